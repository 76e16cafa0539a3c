"""aim-etl: JSON experiment history into Aim, safely repeatable.

The library is a product of its own: `etl.read(paths)` gives a notebook the normalized frames
without touching Aim; `etl.migrate(paths, repo)` is what the `aim-etl migrate` command runs.
"""

__version__ = "0.1.0"

from etl.pipeline import migrate, read  # noqa: E402

__all__ = ["__version__", "migrate", "read"]
