"""One way for every tool to report a user's mistake: one or two lines naming the problem and the fix, exit 2.

Usage in a tool::

    from detkit.cli.errors import UserError, user_errors

    def main(argv=None) -> int:
        args = parse_args(argv)
        with user_errors("eval"):
            ...                     # a ConfigError, FileNotFoundError, DeviceError, ... becomes exit 2
        return 0

Exit status: 0 done, 1 a run that failed on its own (e.g. divergence), 2 a mistake of input.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

USER_EXIT = 2


class UserError(Exception):
    """A mistake of input (a path, a key, a value); ``str(e)`` names it and the fix."""


class ToolExit(SystemExit):
    """Raised by :func:`user_errors` after printing the message; ``code`` is the exit status."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input rather than a failed run."""
    from detkit.config import ConfigError
    from detkit.utils.checkpoint import CheckpointError
    from detkit.utils.device import DeviceError

    types: list[type[BaseException]] = [
        UserError,
        ConfigError,
        CheckpointError,
        DeviceError,
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
    ]
    try:
        from detkit.data.validate import DatasetError

        types.append(DatasetError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def format_error(tool: str, e: BaseException) -> str:
    """``tool: error: message`` on one line (the first line of a long message, plus a second when present)."""
    if isinstance(e, KeyError) and e.args:
        msg = str(e.args[0])
    elif isinstance(e, PermissionError) and e.filename:
        msg = f"permission denied: {e.filename} (choose a folder you can write to, or fix its permissions)"
    elif isinstance(e, OSError) and e.filename:
        msg = f"{e.strerror or type(e).__name__}: {e.filename}"
    else:
        msg = str(e) or type(e).__name__
    return f"{tool}: error: {msg}"


@contextlib.contextmanager
def user_errors(tool: str, extra: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Turn a user's mistake raised inside the block into one message on stderr and ``SystemExit(2)``.

    ``extra`` adds exception types that count as bad input for this tool (e.g. ``ValueError`` where every
    ValueError comes from checking the input). Other exceptions propagate (a bug, or a run that failed).
    """
    try:
        yield
    except user_error_types() + tuple(extra) as e:
        print(format_error(tool, e), file=sys.stderr)
        raise ToolExit(USER_EXIT) from None
