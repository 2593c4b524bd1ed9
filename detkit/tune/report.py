"""What a search writes and prints: trials.csv, best.yaml, the line of each finished trial, the closing table."""

from __future__ import annotations

import csv
import io
import shlex
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import FrozenTrial, TrialState

from detkit.config import dump_config
from detkit.engine.summary import duration
from detkit.tune.space import Param, apply_params, decode_params, format_value
from detkit.utils.files import atomic_write

STATE_ORDER = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.FAIL: 2, TrialState.RUNNING: 3}
TABLE_ROWS = 12  # trials in the closing table (all of them are in trials.csv)


def state_name(t: FrozenTrial) -> str:
    """``complete``, ``pruned``, ``fail``, ``running``, ``waiting``: Optuna's state names."""
    return t.state.name.lower()


def trial_seconds(t: FrozenTrial) -> float | None:
    return t.duration.total_seconds() if t.duration is not None else None


def message(t: FrozenTrial) -> str:
    """Why a trial was pruned or failed (a trial whose process vanished has no message of its own)."""
    if t.state == TrialState.FAIL and "message" not in t.user_attrs:
        return "its process ended without recording a result (killed?)"
    return str(t.user_attrs.get("message", ""))


def param_keys(trials: list[FrozenTrial], params: list[Param]) -> list[str]:
    """The searched keys: this space's, then any other key an earlier run of the study searched."""
    keys = [p.key for p in params]
    for t in trials:
        keys += [k for k in t.params if k not in keys]
    return keys


def best_trial(trials: list[FrozenTrial], direction: str) -> FrozenTrial | None:
    """The complete trial with the best value (the first one on a tie), or None."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not done:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(done, key=lambda t: (sign * t.value, t.number))


def ranked(trials: list[FrozenTrial], direction: str) -> list[FrozenTrial]:
    """Complete trials best first, then pruned (best first), failed and running ones, each by number."""
    sign = -1.0 if direction == "maximize" else 1.0

    def key(t: FrozenTrial):
        value = sign * t.value if t.value is not None else float("inf")
        return (STATE_ORDER.get(t.state, 4), value, t.number)

    return sorted(trials, key=key)


def write_trials_csv(path: Path, trials: list[FrozenTrial], params: list[Param], metric: str) -> None:
    """One row per trial: number, state, the metric, each parameter, the last epoch evaluated, duration, work
    dir, message (written atomically: several processes may write it)."""
    keys = param_keys(trials, params)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["number", "state", metric, *keys, "epochs", "duration_s", "work_dir", "message"])
    for t in sorted(trials, key=lambda t: t.number):
        seconds = trial_seconds(t)
        stored = decode_params(params, t.params)
        w.writerow(
            [
                t.number,
                state_name(t),
                "" if t.value is None else repr(float(t.value)),
                *[format_value(stored[k]) if k in stored else "" for k in keys],
                "" if t.last_step is None else t.last_step,
                "" if seconds is None else f"{seconds:.1f}",
                t.user_attrs.get("work_dir", ""),
                message(t),
            ]
        )
    text = buf.getvalue().encode("utf-8")
    atomic_write(path, lambda f: f.write(text))


def best_config(cfg: dict, params: list[Param], best: FrozenTrial) -> dict:
    """The config of trial ``best`` rebuilt from ``cfg`` (the current base config) and its parameters."""
    return apply_params(cfg, decode_params(params, best.params))


def _value_at(cfg: Any, key: str) -> Any:
    """The value at a dotted key of a config (list items by index); KeyError / IndexError / TypeError if none."""
    node = cfg
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def trial_config(params: list[Param], best: FrozenTrial) -> tuple[str | None, str]:
    """The text of the config.yaml that trial ``best``'s training wrote, or None and why it cannot be used
    (missing, unreadable, or its searched values are not the trial's: another run wrote it)."""
    stored = best.user_attrs.get("work_dir")
    if not stored:
        return None, "the trial has no work dir recorded"
    path = Path(stored) / "config.yaml"
    try:
        text = path.read_text(encoding="utf-8")
        cfg = yaml.safe_load(text)
        for key, value in decode_params(params, best.params).items():
            if _value_at(cfg, key) != value:
                return None, f"{path} has {key} {format_value(_value_at(cfg, key))}, not the trial's"
    except FileNotFoundError:
        return None, f"{path} does not exist"
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, IndexError, TypeError, ValueError) as e:
        return None, f"{path} cannot be read ({type(e).__name__})"
    return text, ""


def write_best_yaml(
    path: Path, cfg: dict, params: list[Param], best: FrozenTrial, metric: str, study_name: str, train_cmd: str
) -> str:
    """best.yaml: the best trial's own resolved config (the config.yaml its training wrote; ``tools/train.py``
    takes it as it is), with a header. Where that file cannot be used, the current config with the trial's
    values; returns why then (a warning for the caller), else an empty string."""
    values = decode_params(params, best.params)
    text, why = trial_config(params, best)
    header = [
        f"# best trial {best.number} of study '{study_name}': {metric} {best.value:.4f}",
        f"# searched: {shown_params(values)}",
        f"# its run: {best.user_attrs.get('work_dir', '')}",
        f"# train it further: {train_cmd}",
    ]
    if text is None:
        header.append(f"# rebuilt from this search's config and the trial's values: {why}")
        text = dump_config(best_config(cfg, params, best))
    data = ("\n".join(header) + "\n" + text).encode("utf-8")
    atomic_write(path, lambda f: f.write(data))
    return why


def train_command(tool: str, best_yaml: Path, work_dir: Path) -> str:
    """The command that trains the best config into ``work_dir/best``."""
    return f"{tool.format('train')} {shlex.quote(str(best_yaml))} --work-dir {shlex.quote(str(work_dir / 'best'))}"


def trial_line(t: FrozenTrial, params: list[Param], metric: str, best: FrozenTrial | None) -> str:
    """The line of a finished trial: number, outcome, metric, best so far, parameters, time."""
    state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
    parts = [f"trial {t.number} {state.get(t.state, state_name(t))}"]
    if t.value is not None:
        parts.append(f"{metric} {t.value:.4f}")
    if best is not None:
        parts.append(f"best {best.value:.4f} (trial {best.number})")
    values = decode_params(params, t.params)
    parts.append(" ".join(f"{k}={format_value(v)}" for k, v in values.items()))
    seconds = trial_seconds(t)
    if seconds is not None:
        parts.append(duration(seconds))
    msg = message(t)
    if msg and t.state != TrialState.COMPLETE:
        parts.append(f"({msg})")
    return "  ".join(p for p in parts if p)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.rjust(w) if i != 1 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
    ]


def counts(trials: list[FrozenTrial]) -> str:
    """``12 trials (10 complete, 1 pruned, 1 fail)``."""
    by_state: dict[str, int] = {}
    for t in sorted(trials, key=lambda t: STATE_ORDER.get(t.state, 4)):
        by_state[state_name(t)] = by_state.get(state_name(t), 0) + 1
    inner = ", ".join(f"{n} {s}" for s, n in by_state.items())
    return f"{len(trials)} trial{'s' if len(trials) != 1 else ''}" + (f" ({inner})" if inner else "")


def summary_lines(trials: list[FrozenTrial], params: list[Param], metric: str, direction: str) -> list[str]:
    """The closing table: the best trials first, then pruned, failed and running ones."""
    keys = param_keys(trials, params)
    rows = [["trial", "state", metric, *keys, "time"]]
    shown = ranked(trials, direction)
    for t in shown[:TABLE_ROWS]:
        stored = decode_params(params, t.params)
        seconds = trial_seconds(t)
        rows.append(
            [
                str(t.number),
                state_name(t),
                "" if t.value is None else f"{t.value:.4f}",
                *[format_value(stored[k]) if k in stored else "" for k in keys],
                "" if seconds is None else duration(seconds),
            ]
        )
    lines = _table(rows)
    if len(shown) > TABLE_ROWS:
        lines.append(f"  ... {len(shown) - TABLE_ROWS} more in trials.csv")
    return lines


def shown_params(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {format_value(v)}" for k, v in values.items())
