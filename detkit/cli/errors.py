"""One way for every tool to report a user's mistake: one or two lines naming the problem and the fix, exit 2.

Usage in a tool::

    from detkit.cli.errors import UserError, run_tool, user_errors

    def main(argv=None) -> int:
        args = parse_args(argv)
        with user_errors("eval"):
            ...                     # a ConfigError, FileNotFoundError, DeviceError, ... becomes exit 2
        return 0

or ``return run_tool("eval", run, args)``, which also prints warnings as ``eval: WARNING: ...`` lines and
returns 2 instead of raising ``SystemExit(2)``.

Exit status: 0 done, 1 a run that failed on its own (e.g. divergence), 2 a mistake of input.
``loud_warnings`` prints library warnings (e.g. categories that disagree) as ``tool: WARNING: ...`` lines.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import warnings
from collections.abc import Callable, Iterator

USER_EXIT = 2


class UserError(Exception):
    """A mistake of input (a path, a key, a value); ``str(e)`` names it and the fix."""


# a tool's script (tools/X.py, /src/tools/X.py); not another toolkit's named as such ("MMDetection's tools/train.py")
_TOOL_SCRIPT = re.compile(r"(?<!'s )(?:python3? )?(?:[\w./-]*/)?tools/(\w+)\.py")
# torchrun, its options, then a tool's script: torchrun needs a script or -m, never a console command
_TORCHRUN_SCRIPT = re.compile(
    r"(torchrun(?: --?[\w-]+(?:[ =](?!-)(?![\w./-]*tools/\w+\.py)[^\s`]+)?)*) (?:python3? )?(?:[\w./-]*/)?tools/(\w+)\.py"
)


def as_invoked(text: str) -> str:
    """``text`` with its tool commands (``python tools/infer.py``, ``tools/check_dataset.py``) written as the user
    runs them: ``detkit infer``, ``detkit check`` when this process is a ``detkit`` command (a pip install has no
    tools/ folder), and ``torchrun ... tools/train.py`` as ``torchrun ... -m detkit.cli.main train`` (torchrun runs
    a script or a module); unchanged when it was started as ``python tools/X.py`` from a checkout."""
    if not sys.argv or not sys.argv[0].startswith("detkit"):
        return text
    from detkit.cli.main import COMMANDS

    names = {module: name for name, (module, _) in COMMANDS.items()}
    text = _TORCHRUN_SCRIPT.sub(lambda m: f"{m.group(1)} -m detkit.cli.main {names.get(m.group(2), m.group(2))}", text)
    return _TOOL_SCRIPT.sub(lambda m: f"detkit {names.get(m.group(1), m.group(1).replace('_', '-'))}", text)


def tool_label(tool: str) -> str:
    """The name a message starts with: ``check_dataset`` as given when started as ``python tools/X.py``, the
    command the user typed (``detkit check``, ``detkit convert coco2yolo``) when this process is ``detkit``."""
    if not sys.argv or not sys.argv[0].startswith("detkit") or tool.startswith("detkit"):
        return tool
    from detkit.cli.main import COMMANDS

    first, _, rest = tool.partition(" ")
    names = {module: name for name, (module, _) in COMMANDS.items()}
    command = names.get(first, first if first in COMMANDS else first.replace("_", "-"))
    return f"detkit {command}" + (f" {rest}" if rest else "")


def other_process() -> bool:
    """True in a process of a distributed run other than the first of its machine (torchrun's ``LOCAL_RANK``,
    SLURM's ``SLURM_LOCALID`` under several tasks): it says nothing about a mistake of input, which every process
    of a machine finds alike, so that the message shows once per machine (a path missing on one machine only is
    still told there); it still exits with the same status."""
    import os

    rank = os.environ.get("LOCAL_RANK") if "RANK" in os.environ else None
    if rank is None and int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        rank = os.environ.get("SLURM_LOCALID")
    return rank not in (None, "", "0")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake on one line, ``prog: error: message (see --help)``, exit 2; its help
    names the tools as the user runs them (:func:`as_invoked`). MMDetection's and Detectron2's flags that the
    tool lacks (``--cfg-options``, ``--eval-only``) are answered with detkit's form, one line each
    (``detkit.cli.ultralytics_args.refuse_peer_flags``), instead of "unrecognized arguments"."""

    def parse_known_args(self, args=None, namespace=None):
        from detkit.cli.ultralytics_args import refuse_peer_flags

        args = sys.argv[1:] if args is None else list(args)
        refuse_peer_flags(self, args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        self.exit(USER_EXIT, None if other_process() else as_invoked(f"{self.prog}: error: {message} (see --help)\n"))

    def format_help(self) -> str:
        return as_invoked(super().format_help())


class ToolExit(SystemExit):
    """Raised by :func:`user_errors` after printing the message; ``code`` is the exit status."""


# (module, exception class) of detkit's input errors; checked only once their module is loaded (an exception
# of a module never imported cannot have been raised), so reporting a mistake imports neither torch nor models
INPUT_ERRORS = (
    ("detkit.config", "ConfigError"),
    ("detkit.utils.checkpoint", "CheckpointError"),
    ("detkit.utils.device", "DeviceError"),
    ("detkit.data.validate", "DatasetError"),
    ("detkit.data.image_io", "ImageReadError"),
)


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input rather than a failed run."""
    types: list[type[BaseException]] = [
        UserError,
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
    ]
    for module, name in INPUT_ERRORS:
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(getattr(loaded, name, None), type):
            types.append(getattr(loaded, name))
    return tuple(types)


MAX_MESSAGE = 600  # characters: five terminal lines; a longer message keeps its first and last lines (the fix)
KEEP_END = 240  # characters kept at the end of a long message of one line (where the fix is)


def _os_message(e: OSError) -> str:
    where = e.filename if e.filename2 is None else f"{e.filename} -> {e.filename2}"
    if isinstance(e, PermissionError):
        return f"permission denied: {where} (choose a folder you can write to, or fix its permissions)"
    if isinstance(e, NotADirectoryError):
        return f"{where}: a part of this path is a file, not a folder; choose another path"
    if isinstance(e, FileExistsError):
        return f"{where} already exists (a file where a folder is needed?); choose another path"
    if isinstance(e, IsADirectoryError):
        return f"{where} is a folder; give a file"
    return f"{e.strerror or type(e).__name__}: {where}"


def is_worker_message(message: str) -> bool:
    """True for the message of an error re-raised from a DataLoader worker ("Caught X in DataLoader worker ...")."""
    return message.startswith("Caught ") and "Original Traceback" in message


def worker_message(message: str) -> str:
    """The original error's message when ``message`` is a DataLoader worker's re-raised one ("Caught X in
    DataLoader worker process N. Original Traceback ... X: message", possibly over several lines); else
    ``message``."""
    if not is_worker_message(message):
        return message
    kind = message.split()[1]  # "Caught KeyError in ..."
    lines = message.splitlines()
    start = max((i for i, line in enumerate(lines) if line.split(":", 1)[0].rsplit(".", 1)[-1] == kind), default=None)
    if start is None:
        return lines[-1].strip()
    first = lines[start].split(":", 1)[1].strip() if ":" in lines[start] else ""
    return "\n".join([first, *lines[start + 1 :]]).strip()


def _key_message(key: str) -> str:
    return key if " " in key else f"missing key '{key}' (a config section or a field of an input file)"


def format_error(tool: str, e: BaseException) -> str:
    """``tool: error: message``: the message with its lines joined, so it takes one or two terminal lines."""
    text = e.args[0] if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str) else str(e)
    if is_worker_message(text):  # an error of a DataLoader worker: its own message (a KeyError's key)
        msg = worker_message(text) or type(e).__name__
        if isinstance(e, KeyError):
            msg = _key_message(msg.strip("'\""))
    elif isinstance(e, KeyError) and e.args:
        msg = _key_message(str(e.args[0]))
    elif isinstance(e, UnicodeDecodeError):
        msg = f"a file given as text is binary or not UTF-8 ({e.reason} at byte {e.start}); check the file arguments"
    elif isinstance(e, OSError) and e.filename and not (e.args and len(e.args) == 1):
        msg = _os_message(e)
    else:
        msg = str(e) or type(e).__name__
    return as_invoked(f"{tool_label(tool)}: error: {shorten(msg)}")


def shorten(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` on one line, at most about ``limit`` characters, its end kept (a message ends with the fix).

    Of a message of several lines (a header, one line per problem, the fix) the first and last lines stay, with as
    many lines between them as fit and ``[... N more lines]`` for the others; what is still too long (one long
    line) loses its middle: ``[... N characters ...]``, words kept whole."""
    lines = [" ".join(line.split()) for line in message.splitlines()]
    lines = [line for line in lines if line]
    text = " ".join(lines)
    if len(text) <= limit:
        return text
    if len(lines) > 2:
        first, middle, last = lines[0], lines[1:-1], lines[-1]
        kept: list[str] = []
        for line in middle:
            rest = len(middle) - len(kept) - 1
            marker = _more_lines(rest)
            if len(" ".join([first, *kept, line, *marker, last])) > limit:
                break
            kept.append(line)
        rest = len(middle) - len(kept)
        text = " ".join([first, *kept, *_more_lines(rest), last])
        if len(text) <= limit:
            return text
    return _cut_middle(text, limit)


def _more_lines(n: int) -> list[str]:
    """``["[... N more lines]"]`` for the lines :func:`shorten` leaves out ([] for none)."""
    return [f"[... {n} more line{'s' if n > 1 else ''}]"] if n else []


def _cut_middle(text: str, limit: int) -> str:
    """``text`` without its middle, ``[... N characters ...]`` in its place; cut at spaces where that keeps most of
    both ends (a long path or value without spaces is cut inside instead of dropped whole)."""
    end = min(KEEP_END, limit // 2)
    tail = text[-end:]
    if " " in tail and len(tail.split(" ", 1)[-1]) > end * 0.8:
        tail = tail.split(" ", 1)[-1]
    head_size = max(limit - len(tail) - 32, 0)
    head = text[:head_size]
    if " " in head and len(head.rsplit(" ", 1)[0]) > head_size * 0.8:
        head = head.rsplit(" ", 1)[0]
    return f"{head} [... {len(text) - len(head) - len(tail) - 2} characters ...] {tail}"


@contextlib.contextmanager
def user_errors(tool: str, extra: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Turn a user's mistake raised inside the block into one message on stderr and ``SystemExit(2)``.

    ``extra`` adds exception types that count as bad input for this tool (e.g. ``ValueError`` where every
    ValueError comes from checking the input). Other exceptions propagate (a bug, or a run that failed).
    """
    try:
        yield
    except BrokenPipeError:  # a reader that closed stdout is no mistake of input (see closed_stdout)
        raise
    except user_error_types() + tuple(extra) as e:
        if not other_process():
            print(format_error(tool, e), file=sys.stderr)
        raise ToolExit(USER_EXIT) from None


@contextlib.contextmanager
def loud_warnings(tool: str, emit: Callable[[str], None] | None = None) -> Iterator[list[str]]:
    """Print each ``UserWarning`` raised inside the block once, as ``tool: WARNING: message`` on stderr.

    Library code warns with ``warnings.warn`` (a mismatch of categories, a skipped image); a tool shows it as
    one plain line instead of Python's ``file:line: UserWarning`` form. ``emit`` replaces the print (training
    gives its logger's ``warning``, so the line also reaches log.txt). Yields the list of messages shown.
    """
    shown: list[str] = []

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = as_invoked(" ".join(str(message).split()))
        if issubclass(category, UserWarning) and text not in shown:
            shown.append(text)
            if emit is not None:
                emit(text)
            elif not other_process():
                print(f"{tool_label(tool)}: WARNING: {text}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = show
        yield shown


CLOSED_STDOUT_EXIT = 1  # Python's recipe for a reader that closed stdout: exit 1, quietly


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its end); True where that cannot
    be told (no poll, no file descriptor)."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True


def closed_stdout(body: Callable[..., int | None], *args) -> int:
    """``body(*args)``'s exit status, stdout flushed; when its reader has closed stdout (``detkit eval ... | head
    -1``: a BrokenPipeError), Python's documented recipe: stdout pointed at devnull (the interpreter's last flush
    would raise again) and exit status 1, with no traceback. A BrokenPipeError of another pipe is raised on."""
    import os

    try:
        status = int(body(*args) or 0)
        sys.stdout.flush()  # (what is still buffered fails here, not at exit)
        return status
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        with contextlib.suppress(AttributeError, OSError, ValueError):  # (no file descriptor: nothing to flush)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_STDOUT_EXIT


def run_tool(tool: str, body: Callable[..., int | None], *args, extra: tuple[type[BaseException], ...] = ()) -> int:
    """``body(*args)`` inside :func:`user_errors` and :func:`loud_warnings`; returns the exit status (2 for a
    user's mistake, after its one-line message) instead of raising ``SystemExit``; a closed stdout ends it quietly
    (:func:`closed_stdout`)."""

    def guarded() -> int:
        with user_errors(tool, extra), loud_warnings(tool):
            return int(body(*args) or 0)

    try:
        return closed_stdout(guarded)
    except ToolExit as e:
        return int(e.code)
