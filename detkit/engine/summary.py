"""What a training says on screen: one line per epoch, an evaluation table (in log.txt) and a final summary."""

from __future__ import annotations

import shlex
from pathlib import Path

UNITS = "AP, AR, IoU and Acc in 0..1; -1 = undefined"


def duration(seconds: float) -> str:
    """``12.3s``, ``2m03s`` or ``1h02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def epoch_line(
    epoch: int,
    max_epochs: int,
    losses: dict[str, float],
    metrics: dict[str, float],
    metric_key: str | None,
    best: dict,
    seconds: float,
    eval_seconds: float = 0.0,
    skipped: int = 0,
    unit: str = "epoch",
    val_skipped: int = 0,
) -> str:
    """``epoch 3/12  loss 0.8123 (cls 0.3011, box 0.5112)  bbox/AP 0.4120 (best 0.4300, epoch 2)  1m10s``;
    ``skipped``: samples data.train left out in the epoch (``None`` samples), shown when > 0; ``val_skipped``: the
    same of the evaluation's data.val, shown after its metric when > 0; ``unit``: ``iter`` for an iteration-based
    run (``epoch`` / ``max_epochs`` are then the iteration and ``train.max_iters``)."""
    parts = [f"{unit} {epoch}/{max_epochs}"]
    if "loss" in losses:
        terms = ", ".join(f"{k} {v:.4f}" for k, v in sorted(losses.items()) if k != "loss")
        parts.append(f"loss {losses['loss']:.4f}" + (f" ({terms})" if terms else ""))
    if skipped > 0:
        parts.append(f"{skipped} bad sample(s) skipped")
    if metric_key and metric_key in metrics:
        text = f"{metric_key} {metrics[metric_key]:.4f}"
        if best.get(unit) == epoch:
            text += " (new best)"
        elif best:
            text += f" (best {best['value']:.4f}, {unit} {best[unit]})"
        parts.append(text)
    if val_skipped > 0:
        parts.append(f"{val_skipped} val sample(s) skipped")
    parts.append(duration(seconds) + (f" (eval {duration(eval_seconds)})" if eval_seconds else ""))
    return "  ".join(parts)


def skipped_note(datasets: dict[str, object]) -> str | None:
    """One warning line for the records datasets left out when built (``skipped.counts``), or None.

    ``datasets`` maps a config section (``data.train``) to its dataset (or None).
    """
    parts = []
    for section, dataset in datasets.items():
        counts = getattr(getattr(dataset, "skipped", None), "counts", None)
        if counts and sum(counts.values()) > 0:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()) if n)
            parts.append(f"{section} left out {sum(counts.values())} record(s) ({kinds})")
    if not parts:
        return None
    return "; ".join(parts) + " (on_error: skip / skip_bad_images); detkit check --config CONFIG lists them"


def held_out_notes(datasets: dict[str, object]) -> list[str]:
    """One line per dataset that is one part of a split folder (``ImageFolderDataset``'s ``val_fraction``):
    which part, how many images. ``datasets`` maps a config section to its dataset (or None); wrappers
    (``dataset`` attributes) are looked through."""
    from detkit.engine.preflight_data import innermost_dataset

    inner = {section: innermost_dataset(dataset) for section, dataset in datasets.items()}
    return [f"{section}: {d.held_out}" for section, d in inner.items() if getattr(d, "held_out", None) is not None]


def log_start_notes(logger, schedule_note: tuple[str, bool] | None, datasets: dict[str, object]) -> None:
    """Log what a user should know as training starts: the schedule's note (a warning when its flag is set),
    the records left out of ``datasets`` (``{"data.train": ds, ...}``) and what each holds out."""
    if schedule_note:
        (logger.warning if schedule_note[1] else logger.info)(schedule_note[0])
    note = skipped_note(datasets)
    if note:
        logger.warning(note)
    for line in held_out_notes(datasets):
        logger.info(line)


def metrics_table(epoch: int, metrics: dict[str, float], unit: str = "epoch", skipped: int = 0) -> str:
    """The evaluation of one epoch (or iteration: ``unit``) as an indented table, with its units; ``skipped``:
    the data.val samples it left out (a last row when > 0)."""
    rows = "\n".join(f"  {k:<16s} {v:.4f}" for k, v in metrics.items())
    note = f"\n  ({skipped} data.val sample(s) skipped: not scored)" if skipped > 0 else ""
    return f"evaluation at {unit} {epoch} ({UNITS}):\n{rows}{note}"


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def summary(
    work_dir: Path,
    best: dict,
    plots: list[Path],
    tool: str,
    seconds: float,
    epochs: int,
    has_val: bool,
    stop_reason: str | None = None,
    unit: str = "epoch",
    exportable: bool = True,
    tile: tuple[int, int] | None = None,
) -> str:
    """The end-of-training summary: best metric, file paths, and the commands to evaluate, infer and export.

    ``tool`` is a command template with ``{}`` for the tool's name (``detkit {}``, ``python tools/{}.py``);
    ``stop_reason``: why a callback ended the run before ``train.max_epochs`` (None: it ran to the end);
    ``unit``: ``iter`` for an iteration-based run (``epochs`` is then the iteration reached); ``exportable``:
    whether the model exports to ONNX (no export line otherwise); ``tile``: the tile size of a tiled data.train
    (the infer line tiles too).
    """
    d = Path(work_dir)
    word = "iteration" if unit == "iter" else unit
    if best:
        head = f"best {best['metric']} {best['value']:.4f} (0..1) at {word} {best[unit]}"
    else:
        head = "no evaluation (no data.val), no best.pth" if not has_val else "no evaluation gave a best.pth"
    weights = d / "best.pth" if best else d / "latest.pth"
    cfg, w = _q(d / "config.yaml"), _q(weights)
    done = f"training stopped early ({stop_reason})" if stop_reason else "training done"
    lines = [f"{done}: {word} {epochs} in {duration(seconds)}; {head}"]
    if best:
        lines.append(f"  best.pth    {d / 'best.pth'}  (weights for inference and fine-tuning)")
    lines += [
        f"  latest.pth  {d / 'latest.pth'}  (the full state, for --resume)",
        f"  plots       {', '.join([str(p) for p in plots[:1]] + [p.name for p in plots[1:]]) or '(none)'}",
        f"  log         {d / 'log.txt'}",
        *([f"evaluate: {tool.format('eval')} {cfg} {w}"] if has_val else []),
        f"infer:    {tool.format('infer')} {cfg} {w} IMAGES... --out-dir {_q(d / 'infer')}"
        + (f" --tile {tile[0]},{tile[1]}" if tile else ""),
        *([f"export:   {tool.format('export')} {cfg} {w} --out {_q(d / 'model.onnx')} --verify"] if exportable else []),
    ]
    return "\n".join(lines)


def log_final_summary(trainer, seconds: float) -> None:
    """Rank 0 at the end of a run: save the loss history, draw the plots, and (unless interrupted) log the
    summary: best metric, files, the next commands. A plot that fails is a warning: the run is done."""
    import logging

    from detkit.engine.plots import plot_history
    from detkit.export.wrappers import is_exportable

    logger = logging.getLogger("detkit")
    t = trainer
    t.record.save_history()
    try:
        plots = plot_history(t.record.history, t.record.metrics(), t.work_dir)
    except Exception as e:  # noqa: BLE001  (the run is done; a plot must not fail it)
        logger.warning("could not write the training plots (%s: %s)", type(e).__name__, e)
        plots = []
    if t.interrupted:
        return
    at = t.length.position(t.epoch, t.iter)
    text = summary(
        t.work_dir, t.best, plots, t.tool, seconds, at, t.evaluator is not None, t.stop_reason, t.length.key,
        exportable=is_exportable(t.model), tile=getattr(t.train_set, "tile_size", None),
    )  # fmt: skip
    logger.info(text)
