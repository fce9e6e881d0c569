"""The one place that turns an exception into virsh's `error:` lines and exit status 1."""

from __future__ import annotations

from typing import TextIO

from nsvirt.driver.errors import DriverError, NoDomainError


class ShellError(Exception):
    """A usage error of the shell itself, worded like virsh's."""


class CommandFailed(Exception):
    """A driver error with virsh's preamble line (`Failed to start domain 'web'`)."""

    def __init__(self, preamble: str, cause: BaseException) -> None:
        super().__init__(preamble)
        self.preamble = preamble
        self.cause = cause


def report(exc: BaseException, err: TextIO, debug: bool = False) -> int:
    """Print the error as virsh would, on `err`; return the exit status (1)."""
    for line in error_lines(exc):
        print(f"error: {line}", file=err)
    if debug:
        import traceback

        cause = exc.cause if isinstance(exc, CommandFailed) else exc
        traceback.print_exception(cause, file=err)
    return 1


def error_lines(exc: BaseException) -> list[str]:
    """What follows `error: ` on each of virsh's lines for this exception."""
    lines: list[str] = []
    cause = exc
    if isinstance(exc, CommandFailed):
        cause = exc.cause
        if not isinstance(cause, NoDomainError):
            lines.append(exc.preamble)
    if isinstance(cause, NoDomainError):
        lines.append(f"failed to get domain '{cause.key}'")  # virsh's own wording
    elif isinstance(cause, DriverError | ShellError):
        lines.append(str(cause))
    elif isinstance(cause, OSError) and cause.filename:
        lines.append(f"{cause.filename}: {cause.strerror}")
    else:  # a bug: still one line and exit 1; --debug adds the traceback
        lines.append(f"internal error: {cause!r}")
    return lines
