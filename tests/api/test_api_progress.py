"""predict's progress bar: on stderr for long inputs on a terminal or in a notebook, forced with progress=True,
never with progress=False, never in captured output unless asked."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

import detkit
from detkit.inference.runner import PROGRESS_MIN_IMAGES, interactive


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def images(n: int) -> list[np.ndarray]:
    return [np.full((32, 40, 3), 100, np.uint8)] * n


def test_forced_bar_counts_the_images_in_captured_output(model, capsys):
    detkit.predict(model, images(3), progress=True)
    err = capsys.readouterr().err
    assert "predict" in err and "3/3" in err
    detkit.predict(model, images(2), tile=(32, 32), progress=True)  # tiled: one step per image
    assert "2/2" in capsys.readouterr().err


def test_no_bar_in_captured_output_by_default(model, capsys):
    detkit.predict(model, images(PROGRESS_MIN_IMAGES + 2))
    assert capsys.readouterr().err == ""


def test_auto_bar_on_a_terminal_for_long_inputs_only(model, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)  # in the test: pytest sets its own again between setup and call
    detkit.predict(model, images(PROGRESS_MIN_IMAGES))  # a handful: no bar
    assert terminal.getvalue() == ""
    detkit.predict(model, images(PROGRESS_MIN_IMAGES + 1), batch_size=16)  # one batch: no bar
    assert terminal.getvalue() == ""
    detkit.predict(model, images(PROGRESS_MIN_IMAGES + 1), progress=False)
    assert terminal.getvalue() == ""
    detkit.predict(model, images(PROGRESS_MIN_IMAGES + 1), batch_size=2)
    assert f"{PROGRESS_MIN_IMAGES + 1}/{PROGRESS_MIN_IMAGES + 1}" in terminal.getvalue()


def test_a_notebook_output_counts_as_interactive():
    notebook = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})()
    assert interactive(notebook) and interactive(Terminal())
    assert not interactive(io.StringIO()) and not interactive(None)


def test_progress_takes_true_false_or_none(model):
    with pytest.raises(TypeError, match=r"predict: progress must be True, False or None .*got 'yes'"):
        detkit.predict(model, images(1), progress="yes")
