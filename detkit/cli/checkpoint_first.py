"""A checkpoint given where CONFIG goes (``detkit infer best.pth IMAGES``, ``detkit eval best.pth``): one line that
says so, with the exact command that uses the config stored in the checkpoint (CONFIG ``-``).

argparse alone would say "the following arguments are required: inputs" (or ``checkpoint``): true, but no help
to a user who meant the checkpoint's own config. :func:`checkpoint_first` looks at the positional arguments
before the tool's parser does; it reads a few bytes of the first one only (no torch).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Sequence

from detkit.cli.errors import as_invoked
from detkit.cli.inputs import TORCH_KINDS
from detkit.utils.checkpoint import file_kind

__all__ = ["checkpoint_first", "positionals"]

MAX_COMMAND = 240  # characters of the command shown; a longer one is cut after the checkpoint
CONFIG_LIKE = ("yaml", "text")  # a config given second: swapped arguments, which check_config_file explains


class _Lenient(argparse.ArgumentParser):
    """The tool's options around one list of positionals; nothing required, a bad value left to the tool's parser."""

    def add_argument(self, *args, **kwargs):
        kwargs.pop("required", None)
        return super().add_argument(*args, **kwargs)

    def error(self, message: str):
        raise ValueError(message)


def positionals(add_options: Callable[[argparse.ArgumentParser], None], argv: Sequence[str]) -> list[str]:
    """The positional arguments of ``argv`` (the values of the options that ``add_options`` adds skipped, options
    and positionals in any order); [] when the options themselves do not parse (the tool's parser says why)."""
    parser = _Lenient(add_help=False)
    parser.add_argument("positionals", nargs="*")
    add_options(parser)
    try:
        return [str(p) for p in parser.parse_known_intermixed_args(list(argv))[0].positionals]
    except (ValueError, TypeError):
        return []


def checkpoint_first(tool: str, argv: Sequence[str], found: Sequence[str], inputs: str | None = None) -> str | None:
    """The message when the first positional of ``argv`` (``found``: see :func:`positionals`) is a checkpoint and
    the rest do not fit CONFIG CHECKPOINT: nothing more (eval, export), or only inputs (``inputs``: their
    placeholder, e.g. ``IMAGES...``, for infer); None otherwise (and for --help).

    The command shown is the user's, with ``-`` inserted before the checkpoint (and ``inputs`` added when none
    was given), as ``detkit TOOL`` or ``python tools/TOOL.py``, whichever was run.
    """
    argv = [str(a) for a in argv]
    if not found or "-h" in argv or "--help" in argv or found[0] == "-":
        return None
    first, rest = found[0], list(found[1:])
    if file_kind(first) not in TORCH_KINDS:
        return None
    if (inputs is None and rest) or any(file_kind(p) in (*TORCH_KINDS, *CONFIG_LIKE) for p in rest):
        return None  # CONFIG CHECKPOINT as parsed: the tool's own checks name the swapped or wrong file
    at = argv.index(first)
    words = [shlex.quote(a) for a in [*argv[:at], "-", *argv[at:]]] + ([inputs] if inputs and not rest else [])
    if len(" ".join(words)) > MAX_COMMAND:  # e.g. a shell glob of many images: the rest as the user gave it
        words = [*words[: at + 2], "... (the rest as given)"]
    command = as_invoked(f"python tools/{tool}.py")
    return (
        f"{first} is a checkpoint: give the config first, or '-' to use the one stored in it: "
        f"{command} {' '.join(words)}"
    )
