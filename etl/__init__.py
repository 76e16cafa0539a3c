"""aim-etl: JSON experiment history into Aim, safely repeatable.

The library is a product of its own: `etl.read(paths)` gives a notebook the normalized frames
without touching Aim; `etl.migrate(paths, repo)` is what the `aim-etl migrate` command runs;
`etl.export(repo, query=None)` gives the same two frames back from any Aim repo.
"""

__version__ = "0.1.0"

from etl.exporting import export  # noqa: E402
from etl.pipeline import migrate, read  # noqa: E402

__all__ = ["__version__", "export", "migrate", "read"]
