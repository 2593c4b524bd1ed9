"""Dataset problems: the error type, one finding (:class:`Problem`), skipped-record counts, their formatting.

Shared by every dataset and by ``tools/check_dataset.py``; :mod:`detkit.data.validate` holds the COCO checks that
produce them. Severity: an ``error`` is what training (or COCO evaluation) refuses or ``on_error: skip`` leaves
out; a ``warning`` trains but is probably a mistake.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

ERROR, WARNING = "error", "warning"
ON_ERROR_MODES = ("raise", "skip")


class DatasetError(ValueError):
    """A dataset that cannot be used as given; the message names the file, the record and the fix."""


@dataclass(frozen=True)
class Problem:
    """One finding: ``kind`` (e.g. ``bad_box``), a message naming file, record and fix, and where it is.

    ``record`` is ``'image'``, ``'annotation'``, ``'category'`` or ``'file'``; ``index`` is the
    record's position in its json list (``None`` for file-level problems).
    """

    kind: str
    message: str
    image_id: Any = None
    ann_id: Any = None
    severity: str = ERROR
    record: str = "file"
    index: int | None = None


def check_on_error(value: Any, owner: str) -> str:
    """``value`` when it is a valid ``on_error`` mode (``'raise'`` or ``'skip'``); else a ValueError naming ``owner``."""
    if value not in ON_ERROR_MODES:
        raise ValueError(
            f"{owner}: on_error must be 'raise' (stop at the first bad record) or 'skip' (leave bad "
            f"records out, with a warning that counts them), got {value!r}"
        )
    return value


class SkippedRecords:
    """What a dataset left out (``on_error: skip``, ``skip_bad_images``): ``counts`` by ``'record:kind'``.

    :meth:`note` counts one record and warns the first time its key (a file, an annotation) is seen;
    :meth:`add` counts records dropped at construction (one summary warning is the caller's). Counts made
    in DataLoader worker processes stay in those processes (batches count their ``None`` samples in
    ``num_skipped``).
    """

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self._warned: set = set()

    def add(self, record: str, kind: str, n: int = 1) -> None:
        self.counts[f"{record}:{kind}"] += n

    def note(self, record: str, kind: str, key: Any, message: str) -> None:
        self.add(record, kind)
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, stacklevel=3)

    def total(self) -> int:
        return sum(self.counts.values())

    def __repr__(self) -> str:
        return f"SkippedRecords({dict(sorted(self.counts.items()))})"


def problem_list(problems: list[Problem], severity: str = ERROR) -> list[Problem]:
    """The problems of one severity."""
    return [p for p in problems if p.severity == severity]


class ProblemReport:
    """``errors`` and ``warnings`` of a report's ``problems`` (the reports of ``tools/check_dataset.py``)."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return problem_list(self.problems, ERROR)

    @property
    def warnings(self) -> list[Problem]:
        return problem_list(self.problems, WARNING)


def format_problems(problems: list[Problem], limit: int | None = None, hint: str | None = None) -> str:
    """One line per problem (``ERROR [kind] message``), at most ``limit`` of them plus a count of the rest.

    ``hint`` ends the count line: the command that lists every problem of this dataset (a dataset's
    ``check_hint()``, e.g. ``run detkit check data.yaml --split train for the details``); default
    the COCO form of that command.
    """
    shown = problems if limit is None else problems[:limit]
    lines = [f"{p.severity.upper()} [{p.kind}] {p.message}" for p in shown]
    if len(problems) > len(shown):
        hint = hint or "detkit check ANN_FILE IMG_DIR lists them all"
        lines.append(f"... and {len(problems) - len(shown)} more ({hint})")
    return "\n".join(lines)
