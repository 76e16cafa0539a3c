"""An `aim://HOST:PORT` target: its address, its local ledger, and whether the server is fit to write to.

No Aim here: the checks are two plain HTTP requests (the server's `/status/` and its version), made
before anything is written, so an unreachable or mismatched server costs a clear message and
leaves the ledger untouched. Aim's own client, by contrast, logs an error and retries a dead
server for ever in a background thread.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from etl.errors import EtlError, ServerIncompatible, ServerUnavailable

SCHEME = "aim://"
LEDGER_NAME = "ledger.sqlite"
# How long one probe of the server may take; a server busy with another importer answers in ms.
PROBE_TIMEOUT = 5.0


def is_remote(repo: str | Path) -> bool:
    return str(repo).startswith(SCHEME)


@dataclass(frozen=True)
class RemoteTarget:
    """An Aim server as `aim server` serves it: `aim://HOST:PORT`."""

    host: str
    port: int

    @classmethod
    def parse(cls, repo: str | Path) -> RemoteTarget | None:
        """The target named by `--repo`, or None when it is a local path."""
        text = str(repo)
        if not is_remote(text):
            return None
        match = re.fullmatch(r"aim://(\[[^\]]+\]|[^:/]+):(\d+)/?", text)
        if match is None:
            raise EtlError(f"{text}: expected aim://HOST:PORT, as `aim server` prints it")
        return cls(match.group(1), int(match.group(2)))

    @property
    def address(self) -> str:
        return f"{SCHEME}{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.address

    def default_ledger(self) -> Path:
        """`$XDG_DATA_HOME/aim-etl/servers/HOST_PORT/ledger.sqlite` (`~/.local/share` without it).

        The server's repo folder is not ours to write into (it is on another machine), so each
        importing machine keeps its own ledger per server; `--ledger` overrides.
        """
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        slug = re.sub(r"[^A-Za-z0-9.-]", "_", f"{self.host}_{self.port}")
        return base / "aim-etl" / "servers" / slug / LEDGER_NAME

    def check(self) -> str:
        """Raise unless an Aim server of our Aim's major.minor version answers; return its version."""
        from importlib.metadata import version as installed_version

        try:
            self._get("/status/")
            answer = self._get("/client/get-version/")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ServerUnavailable(self.address, _reason(exc)) from None
        server = str(answer.get("version", "")) if isinstance(answer, dict) else ""
        client = installed_version("aim")
        if not server or _minor(server) != _minor(client):
            raise ServerIncompatible(self.address, server or "unknown (older than 3.19)", client)
        return server

    def _get(self, path: str) -> object:
        with urllib.request.urlopen(f"http://{self.host}:{self.port}{path}", timeout=PROBE_TIMEOUT) as response:
            return json.loads(response.read() or b"null")

    def reachable(self) -> bool:
        """One short probe: does the server answer at all right now?"""
        try:
            self._get("/status/")
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return True


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    return getattr(reason, "strerror", None) or str(reason)
