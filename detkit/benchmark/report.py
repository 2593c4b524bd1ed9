"""The tables of ``tools/benchmark.py``: plain text for the terminal, markdown rows appended to ``--md``.

Data-loading rows (``split``, ``workers``, ``batch``, ``images_per_s``, ``ms_per_batch``) and infer / train rows
(:func:`detkit.benchmark.harness.result_row`), each with its compiled and autocast twins as rows of their own.
"""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

from detkit.utils.files import atomic_write

__all__ = ["append_markdown", "append_model_markdown", "format_model_table", "format_table", "with_variant_rows"]


def format_table(rows: list[dict]) -> str:
    """A plain-text table of the rows."""
    head = f"{'split':<6} {'workers':>7} {'batch':>5} {'images/s':>9} {'ms/batch':>9}"
    lines = [head, "-" * len(head)]
    lines += [
        f"{r['split']:<6} {r['workers']:>7} {r['batch']:>5} {r['images_per_s']:>9.1f} {r['ms_per_batch']:>9.1f}"
        for r in rows
    ]
    return "\n".join(lines)


def _machine() -> str:
    return f"{platform.processor() or platform.machine()} {os.cpu_count()} CPUs, {platform.system()}"


def append_table_rows(path: str, header: str, lines: list[str]) -> None:
    """Append markdown table ``lines`` to ``path``, after ``header`` (the column names and the rule) when the
    file does not have it yet; written atomically."""
    p = Path(path)
    text = p.read_text(encoding="utf-8") if p.exists() else ""
    if header.splitlines()[0] not in text:
        text += ("\n" if text and not text.endswith("\n") else "") + ("\n" if text else "") + header
    text += "".join(line + "\n" for line in lines)
    atomic_write(p, lambda f: f.write(text.encode("utf-8")))


def append_markdown(path: str, config: str, task: str, rows: list[dict], iters: int) -> None:
    """Append one markdown table row per data-loading result to ``path``."""
    header = (
        "| date | task | config | split | workers | batch | images/s | ms/batch | iters | machine |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    date = datetime.date.today().isoformat()
    lines = [
        f"| {date} | {task} | {config} | {r['split']} | {r['workers']} | {r['batch']} | "
        f"{r['images_per_s']:.1f} | {r['ms_per_batch']:.1f} | {iters} | {_machine()} |"
        for r in rows
    ]
    append_table_rows(path, header, lines)


def _fmt(v, spec: str = ".0f") -> str:
    return "-" if v is None else format(v, spec)


def _twin(row: dict, label: str, ms: float, ratio: float | None, mem: float | None, check: str) -> dict:
    """``row`` with detkit's columns replaced by a variant's (``label`` appended to the task)."""
    peer_mem = row["peer_mem_mb"]
    return {
        **row,
        "task": f"{row['task']} ({label})",
        "detkit_ms": ms,
        "ratio": ratio,
        "detkit_mem_mb": mem,
        "mem_ratio": mem / peer_mem if mem and peer_mem else None,
        "check": check,
        "compiled_ms": None,
        "compiled_check": None,
        "amp_ms": None,
    }


def with_variant_rows(rows: list[dict]) -> list[dict]:
    """``rows`` with, after each row that has compiled (autocast) figures, its ``(compiled)`` (``(amp ...)``)
    twin: detkit's columns replaced by that variant's (ratios against the same peer), the check by its check."""
    out = []
    for r in rows:
        out.append(r)
        if r.get("compiled_ms") is not None:
            check = f"{r['compiled_check']}; compiled / eager {r['compiled_vs_eager']:.2f}"
            out.append(_twin(r, "compiled", r["compiled_ms"], r["compiled_ratio"], r["compiled_mem_mb"], check))
        if r.get("amp_ms") is not None:
            out.append(_twin(r, f"amp {r['amp_dtype']}", r["amp_ms"], r["amp_ratio"], r["amp_mem_mb"], r["amp_check"]))
    return out


def format_model_table(rows: list[dict]) -> str:
    """A plain-text table of infer/train rows (times in ms, memory in MiB, ratios detkit / peer)."""
    head = (
        f"{'task':<20} {'model':<20} {'device':<6} {'input':<16} {'detkit ms':>10} {'peer ms':>9} {'ratio':>6} "
        f"{'detkit MiB':>10} {'peer MiB':>8} {'ratio':>6}"
    )
    rows = with_variant_rows(rows)
    lines = [head, "-" * len(head)]
    lines += [
        f"{r['task']:<20} {r['model']:<20} {r['device']:<6} {r['input']:<16} {_fmt(r['detkit_ms']):>10} "
        f"{_fmt(r['peer_ms']):>9} {_fmt(r['ratio'], '.2f'):>6} {_fmt(r['detkit_mem_mb']):>10} "
        f"{_fmt(r['peer_mem_mb']):>8} {_fmt(r['mem_ratio'], '.2f'):>6}"
        for r in rows
    ]
    lines += [f"{r['task']}: {r['compiled_check']}" for r in rows if r.get("compiled_check")]
    lines += [f"{r['task']}: {r['amp_check']}" for r in rows if r.get("amp_ms") is not None]
    return "\n".join(lines + [f"memory: {rows[0]['mem_method']}" if rows else ""])


def append_model_markdown(path: str, config: str, rows: list[dict]) -> None:
    """Append infer/train rows as markdown table rows to ``path``."""
    header = (
        "| date | task | config | device | threads | input | detkit ms | peer ms | ratio | "
        "detkit MiB | peer MiB | iters | machine | check |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    date = datetime.date.today().isoformat()
    rows = with_variant_rows(rows)
    lines = [
        f"| {date} | {r['task']} | {config} | {r['device']} | {_fmt(r['threads'], 'd')} | {r['input']} | "
        f"{_fmt(r['detkit_ms'])} | {_fmt(r['peer_ms'])} | {_fmt(r['ratio'], '.2f')} | "
        f"{_fmt(r['detkit_mem_mb'])} | {_fmt(r['peer_mem_mb'])} | {r['iters']} | {_machine()} | "
        + str(r["check"]).replace("|", "\\|")
        + " |"
        for r in rows
    ]
    append_table_rows(path, header, lines)
