"""Library errors. The library raises these; only `etl.cli` turns them into exit codes."""

from __future__ import annotations


class EtlError(Exception):
    """Base of every error aim-etl raises on purpose."""


class BadRecord(EtlError):
    """One record (a line, a document, an entry) that cannot be imported; the rest goes on.

    Readers yield these instead of raising, so one torn line never stops an import. The message
    starts with the place, `runs/a.jsonl:17: expected object, got list`, as compilers do.
    """

    def __init__(
        self, source: str, locator: str, reason: str, *, torn: bool = False, end_offset: int | None = None
    ) -> None:
        self.source = source
        self.locator = locator
        self.reason = reason
        # A torn last line may still be being written; `sync` leaves it for next time.
        self.torn = torn
        # Byte offset just after a bad but complete line: a sync cursor may move past it.
        self.end_offset = end_offset
        super().__init__(f"{source}:{_short(locator)}: {reason}")


def _short(locator: str) -> str:
    return locator.removeprefix("line ")


class RepoLocked(EtlError):
    """Another aim-etl process is importing into the same repo."""

    def __init__(self, lock_path: str, waited: float) -> None:
        self.lock_path = lock_path
        super().__init__(
            f"another aim-etl is importing into this repo (lock {lock_path} held"
            + (f" for {waited:g}s more than --wait allowed" if waited else "")
            + "); try again later, or pass --wait SECONDS"
        )


class SourceNotFound(EtlError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: no such file or directory")


class LedgerError(EtlError):
    """The ledger cannot be opened or is of a schema this version does not know."""


class StageFailed(EtlError):
    """A pipeline stage failed; says which, and what was already committed (as dlt's PipelineStepFailed)."""

    def __init__(self, stage: str, cause: BaseException, committed_runs: int) -> None:
        self.stage = stage
        self.cause = cause
        self.committed_runs = committed_runs
        super().__init__(
            f"{stage} failed: {cause.__class__.__name__}: {cause} "
            f"({committed_runs} runs were fully written and recorded before the failure; "
            "running the same command again resumes safely)"
        )


class ServerUnavailable(EtlError):
    """The Aim server at an `aim://` address does not answer (at start, or it went away mid-import)."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        super().__init__(
            f"{address}: the Aim server does not answer ({reason}); start it with `aim server`, or check "
            "the address. Nothing not written is recorded as done: run the same command again when it is back"
        )


class ServerIncompatible(EtlError):
    """The Aim server runs another Aim version than this client: its storage may differ."""

    def __init__(self, address: str, server_version: str, client_version: str) -> None:
        super().__init__(
            f"{address}: the Aim server runs aim {server_version}, this aim-etl uses aim {client_version}; "
            "refusing to write. Install the same Aim version on both sides"
        )
