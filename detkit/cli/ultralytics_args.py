"""Other toolkits' habits on a detkit command line: Ultralytics' ``imgsz=640 epochs=10 batch=16 device=0`` as
words, ``--epochs 10`` as flags, ``data=ds/data.yaml``, ``model=yolov8n.pt``; MMDetection's and Detectron2's
flags (``--cfg-options k=v``, ``--config-file X``, ``--eval-only``) and Detectron2's ``SOLVER.MAX_ITER 10`` pairs.

:func:`refuse_ultralytics_words` finds them before argparse (which would call them "unrecognized arguments")
and exits 2 with one line each naming detkit's form (``detkit.ultralytics_names``), then the whole command
in detkit's words. :func:`refuse_peer_flags` answers the MMDetection / Detectron2 ones (``detkit.peer_names``);
every tool's parser (``detkit.cli.errors.ArgumentParser``) runs it.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from detkit.cli.errors import USER_EXIT, as_invoked, other_process, tool_label
from detkit.cli.ultralytics_eval import SWITCHES as EVAL_SWITCHES
from detkit.cli.ultralytics_eval import eval_name, translate_eval
from detkit.peer_names import D2, PeerName, config_key, flag, words_to_set
from detkit.peer_names import FLAGS as PEER_FLAGS
from detkit.peer_names import KEYS as PEER_KEYS
from detkit.peer_names import ROOTS as PEER_ROOTS
from detkit.ultralytics_names import BOOLEAN_FLAGS, Translation, canonical, packaged_for, translate, weights_note

__all__ = ["refuse_peer_flags", "refuse_ultralytics_words"]

DATA_TOOLS = {"train": "trains", "tune": "tunes the hyperparameters of"}  # the tools that take --data DATA.yaml


@dataclass
class Scan:
    """The command line split into Ultralytics settings ``(given, name, value)``, other ``key=value`` words, and
    the tokens argparse takes (positionals and known flags with their values, in order)."""

    habits: list[tuple[str, str, str]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    positionals: list[str] = field(default_factory=list)


def _takes(action: argparse.Action, rest: Sequence[str]) -> int:
    """How many of the tokens after a known flag are its values (argparse's rule for these nargs)."""
    values = 0
    for token in rest:
        if token.startswith("-") and token != "-":
            break
        values += 1
    if action.nargs == 0:
        return 0
    if action.nargs in (None, "?"):
        return min(values, 1)
    if isinstance(action.nargs, int):
        return min(values, action.nargs)
    return values  # '+', '*'


def _flag_action(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    """The action of ``flag`` as argparse reads it (an exact flag, or the one flag it abbreviates)."""
    actions = parser._option_string_actions  # noqa: SLF001  (argparse's own table of flags)
    if flag in actions:
        return actions[flag]
    matches = [a for f, a in actions.items() if f.startswith(flag) and f.startswith("--")]
    return matches[0] if len(matches) == 1 else None


def _long_flag(parser: argparse.ArgumentParser, argv: Sequence[str], i: int, out: Scan, names=canonical) -> int:
    """Read the ``--flag`` at ``argv[i]`` into ``out`` (an Ultralytics setting, or argparse's with its values);
    returns the index after it. ``names``: the Ultralytics name of a word (None: not one)."""
    token = argv[i]
    flag, eq, value = token.partition("=")
    action = _flag_action(parser, flag)
    name = names(flag) if action is None else None
    if name is not None:
        has_value = not eq and i + 1 < len(argv) and not argv[i + 1].startswith("-")
        given = f"{token} {argv[i + 1]}" if has_value else token
        out.habits.append((given, name, value or (argv[i + 1] if has_value else "true")))
        return i + (2 if has_value else 1)
    n = 0 if eq or action is None else _takes(action, argv[i + 1 :])
    out.kept += argv[i : i + 1 + n]
    return i + 1 + n


def _names(tool: str):
    """The function giving the Ultralytics name of a word on ``tool``'s command line, and the names Ultralytics
    also takes as bare words (``yolo train resume``: ``resume=True``)."""
    if tool == "eval":
        return eval_name, EVAL_SWITCHES
    return canonical, BOOLEAN_FLAGS


def scan(parser: argparse.ArgumentParser, argv: Sequence[str], tool: str = "train") -> Scan:
    """Split ``argv`` (see :class:`Scan`); the values of ``--set`` are config keys, never habits."""
    out, i = Scan(), 0
    names, switches = _names(tool)
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out.kept += argv[i:]
            out.positionals += argv[i + 1 :]
            break
        if token.startswith("--") and len(token) > 2:
            i = _long_flag(parser, argv, i, out, names)
            continue
        key, eq, value = token.partition("=")
        if token.startswith("-") and token != "-":  # a short flag (-h) or a negative number: argparse's
            out.kept.append(token)
        elif eq and not os.path.exists(token):
            name = names(key)
            if name is not None:
                out.habits.append((token, name, value))
            else:
                out.words.append(token)
        elif names(token) in switches and token == token.lower() and not os.path.exists(token):
            out.habits.append((token, names(token), "true"))  # a bare Ultralytics switch: `yolo train resume`
        else:
            out.kept.append(token)
            out.positionals.append(token)
        i += 1
    return out


def _config_for(found: Scan, translations: list[Translation], tool: str) -> tuple[str | None, dict | None]:
    """The CONFIG of this command (given, or the one ``model=`` names; ``detkit eval``: else ``-``) and its loaded
    config (``-``: the one the checkpoint holds; None if it fails)."""
    config = next((t.config for t in translations if t.config), None) or (found.positionals or [None])[0]
    checkpoint = next((t.checkpoint for t in translations if t.checkpoint), None)
    if tool == "eval":
        checkpoint = checkpoint or (found.positionals[1:2] or [None])[0]
        config = config or "-"
    if config is None:
        return None, None
    try:
        if config == "-":
            from detkit.utils.checkpoint import load_checkpoint

            stored = (load_checkpoint(checkpoint).get("meta") or {}).get("config") if checkpoint else None
            return config, stored if isinstance(stored, dict) else None
        from detkit.config import load_config

        return config, load_config(config)
    except Exception:  # noqa: BLE001  (a hint only: the tool reports a bad config once the words are fixed)
        return config, None


def _command(tool: str, found: Scan, config: str | None, fixes: list[Translation]) -> str:
    """The whole command in detkit's words (``project=`` and ``name=`` join into one ``--work-dir``; eval's
    ``model=`` is the CHECKPOINT, after CONFIG)."""
    data = next((t.flags[1] for t in fixes if t.flags[:1] == ["--data"]), None)
    kept = list(found.kept)
    if config in kept:
        kept.remove(config)
    if config is None:
        from detkit.data.data_arg import suggest_config

        config = suggest_config(data)
    checkpoint = [t.checkpoint for t in fixes if t.checkpoint][:1]
    work = [t.flags[1] for t in fixes if t.flags[:1] == ["--work-dir"] and len(t.flags) == 2]
    flags = [tok for t in fixes if t.flags[:1] != ["--work-dir"] for tok in t.flags]
    flags += ["--work-dir", "/".join(work)] if work else []
    sets = [s for t in fixes for s in t.sets]
    words = [config, *checkpoint, *kept, *flags, *(["--set", *sets] if sets else [])]
    return " ".join([as_invoked(f"python tools/{tool}.py"), *map(shlex.quote, words)])


def _data_yaml_as_config(found: Scan) -> str | None:
    """The CONFIG of ``found`` when it is an Ultralytics data.yaml, which then becomes ``--data`` of the config
    that :func:`~detkit.data.data_arg.suggest_config` names, in place (the user's other arguments kept)."""
    from detkit.data.data_arg import is_data_yaml, suggest_config

    given = (found.positionals or [None])[0]
    if given is None or not is_data_yaml(given):
        return None
    config = suggest_config(given)
    i = found.kept.index(given)
    found.kept[i : i + 1] = [config, "--data", given]
    found.positionals[0] = config
    return given


def _model_as_config(found: Scan) -> str | None:
    """The answer to an Ultralytics model name given as CONFIG (``yolov8n.pt``, ``yolo11s-seg``), which then
    becomes the packaged config of that layout, in place; None when CONFIG is none."""
    given = (found.positionals or [None])[0]
    fit = packaged_for(given) if given is not None and not os.path.exists(given) else None
    if fit is None:
        return None
    config, note = fit
    found.kept[found.kept.index(given)] = config
    found.positionals[0] = config
    weights = f"; {weights_note(given)}" if given.lower().endswith(".pt") and weights_note(given) else ""
    return f"{given} is Ultralytics' model name; detkit's: CONFIG {config} ({note}{weights})"


def _weights_only(path: str) -> bool:
    """Whether detkit checkpoint ``path`` holds weights only (no optimizer or RNG state: resume refuses it, as
    ``detkit.engine.train_state`` tells), like best.pth; a file that is not there: by its name."""
    if not os.path.isfile(path):
        return PurePosixPath(path.replace("\\", "/")).name == "best.pth"
    from detkit.utils.checkpoint import load_checkpoint

    try:
        ckpt = load_checkpoint(path)
    except Exception:  # noqa: BLE001  (a hint only: the resume itself names an unreadable file)
        return False
    return "optimizer" not in ckpt or "rng" not in ckpt


def _resume_fixes(weights: str, model: Translation) -> tuple[Translation, Translation]:
    """detkit's ``model`` and ``resume`` for resuming from the detkit checkpoint ``weights``: ``--resume`` (its
    folder's latest.pth) for latest.pth or a weights-only file beside a latest.pth, ``--resume CKPT`` for
    another training state; a weights-only file without one cannot be resumed: ``--load-from`` starts anew."""
    run_config = Translation("model", config=model.config, note="the config.yaml of the run to resume")
    if PurePosixPath(weights.replace("\\", "/")).name == "latest.pth":
        return run_config, Translation("resume", flags=["--resume"])
    if not _weights_only(weights):
        return run_config, Translation("resume", flags=["--resume", weights])
    latest = os.path.join(os.path.dirname(weights), "latest.pth")
    if os.path.isfile(latest) or not os.path.exists(weights):
        note = f"{weights} holds weights only, not a training state: the run resumes from its folder's latest.pth"
        return run_config, Translation("resume", flags=["--resume"], note=note)
    note = (
        f"{weights} holds weights only, not a training state, and {latest} is not there: it cannot be resumed; "
        f"start a new run from its weights with --load-from {weights}"
    )
    return model, Translation("resume", note=note)


def _resume_run(habits: list[tuple[str, str, str]], fixes: list[Translation]) -> list[Translation]:
    """``resume`` with ``model=RUN/CKPT.pth`` (``yolo train resume model=runs/A/last.pt``): detkit resumes a run
    from its own config, ``RUN/config.yaml --resume`` (see :func:`_resume_fixes`)."""
    names = [name for _, name, _ in habits]
    if "resume" not in names or "model" not in names:
        return fixes
    model = fixes[names.index("model")]
    weights = model.flags[1] if model.flags[:1] == ["--load-from"] and model.config else None
    if weights is None:  # (Ultralytics weights: converted, they start a new run)
        note = "detkit resumes its own runs only (RUN/config.yaml --resume); an Ultralytics .pt starts a new one"
        return [Translation("resume", note=note) if f.name == "resume" else f for f in fixes]
    model_fix, resume_fix = _resume_fixes(weights, model)
    resumes = [f.name == "resume" and f.flags[:1] == ["--resume"] for f in fixes]
    return [model_fix if f.name == "model" else resume_fix if again else f for f, again in zip(fixes, resumes)]


def _data_yaml_line(tool: str, found: Scan, data_yaml: str) -> str:
    """The refusal of a data.yaml given as CONFIG, with the user's command that reads it with ``--data``."""
    run = " ".join([as_invoked(f"python tools/{tool}.py"), *map(shlex.quote, found.kept)])
    return (
        f"CONFIG {data_yaml} is an Ultralytics data.yaml (a dataset), not a detkit config; give a config as CONFIG "
        f"and the data.yaml with --data: `{run}` {DATA_TOOLS[tool]} {found.positionals[0]} on it (`detkit configs` "
        "lists the configs)"
    )


def refuse_ultralytics_words(parser: argparse.ArgumentParser, argv: Sequence[str], tool: str) -> None:
    """Exit 2 when ``argv`` holds Ultralytics-style settings (``epochs=10``, ``--imgsz 640``, ``data=x.yaml``) or
    other ``key=value`` words: one line each with detkit's form, then the command in detkit's words."""
    refuse_peer_flags(parser, argv)
    found = scan(parser, list(argv), tool)
    if {"-h", "--help"} & set(found.kept):
        return  # (--help wins, as in argparse)
    data_yaml = _data_yaml_as_config(found) if tool in DATA_TOOLS else None
    if data_yaml and not found.habits and not found.words:
        print(f"{tool_label(tool)}: error: {_data_yaml_line(tool, found, data_yaml)}", file=sys.stderr)
        raise SystemExit(USER_EXIT)
    if not found.habits and not found.words:
        return
    model = _model_as_config(found) if tool in DATA_TOOLS else None
    say = translate_eval if tool == "eval" else translate
    first = [say(name, value) for _, name, value in found.habits]
    config, cfg = _config_for(found, first, tool)
    fixes = [_own_flags(say(name, value, cfg), parser, tool) for _, name, value in found.habits]
    fixes = _resume_run(found.habits, fixes)
    label = tool_label(tool)
    lines = [f"{label}: error: {model}"] if model else []
    for (given, _, _), fix in zip(found.habits, fixes):
        lines.append(f"{label}: error: {given} is Ultralytics' spelling; detkit's: {as_invoked(fix.text())}")
    for word in found.words:
        peer = config_key(word.partition("=")[0].split("."), word.partition("=")[2], cfg)
        if peer is not None:  # Detectron2's LazyConfig overrides (train.max_iter=10), MMDetection's keys
            peer.given = word
            lines.append(f"{label}: error: {as_invoked(peer.line('KEY=VALUE override'))}")
            continue
        lines.append(
            f"{label}: error: {word}: a KEY=VALUE word is Ultralytics' form; detkit sets config keys with --set "
            "KEY=VALUE, under detkit's names (docs/training.md, 'Coming from Ultralytics')"
        )
    if found.habits:
        lines.append(f"{label}: in detkit's words: {_command(tool, found, config, fixes)}")
    print("\n".join(lines), file=sys.stderr)
    raise SystemExit(USER_EXIT)


def _own_flags(fix: Translation, parser: argparse.ArgumentParser, tool: str) -> Translation:
    """``fix`` with a note instead of a flag that this tool lacks (``detkit tune`` has no ``--device``)."""
    flag = fix.flags[0] if fix.flags else None
    if flag is None or flag in parser._option_string_actions:  # noqa: SLF001
        return fix
    return Translation(fix.name, note=f"{tool_label(tool)} has no {flag}: see --help")


D2_KEY = re.compile(r"[A-Z_][A-Z0-9_]*(?:\.[A-Z0-9_]+)*")  # SOLVER.MAX_ITER, OUTPUT_DIR
D2_ROOTS = {*(r for roots in PEER_ROOTS.values() for r in roots if r.isupper()), *filter(str.isupper, PEER_KEYS)}


def _fixed_positionals(parser: argparse.ArgumentParser) -> int | None:
    """How many positional arguments ``parser`` takes when their number is fixed (CONFIG CHECKPOINT: 2); None for
    a tool with a list of them (INPUT...)."""
    positionals = [a for a in parser._actions if not a.option_strings]  # noqa: SLF001
    if any(a.nargs in ("*", "+", "?", argparse.REMAINDER) for a in positionals):
        return None
    return sum(a.nargs if isinstance(a.nargs, int) else 1 for a in positionals)


def _d2_pair(argv: Sequence[str], i: int) -> bool:
    """Whether ``argv[i]`` and the word after it are Detectron2's ``KEY VALUE`` override (``SOLVER.MAX_ITER 10``)."""
    token = argv[i]
    return (
        i + 1 < len(argv)
        and not argv[i + 1].startswith("--")
        and D2_KEY.fullmatch(token) is not None
        and token.split(".")[0] in D2_ROOTS
        and not os.path.exists(token)
    )


def _tool_command(parser: argparse.ArgumentParser) -> str:
    prog = parser.prog
    return as_invoked(f"python tools/{prog}") if prog.endswith(".py") else prog


def _peer_flag(parser: argparse.ArgumentParser, argv: Sequence[str], i: int) -> tuple[str | None, int]:
    """The answer to the MMDetection / Detectron2 flag at ``argv[i]`` (None when it is not one, or one this tool
    has) and the index after it and its values."""
    name, eq, value = argv[i].partition("=")
    if name not in PEER_FLAGS or _flag_action(parser, name) is not None:
        return None, i + 1
    arity = PEER_FLAGS[name][1]
    values, j = [value] if eq else [], i + 1
    while (arity == "*" or len(values) < arity) and j < len(argv) and not argv[j].startswith("-"):
        if name in ("--cfg-options", "--options") and "=" not in argv[j]:
            break  # (KEY=VALUE words only: CONFIG may follow)
        values.append(argv[j])
        j += 1
    found = flag(name, values, _tool_command(parser))
    found.given = " ".join(argv[i:j])
    needs = "--set" if found.fix.sets else (found.fix.flags or [""])[0].split(" ")[0]
    if needs and _flag_action(parser, needs) is None:  # (detkit convert has no --set, detkit eval no --resume)
        found.fix = Translation(name, note=f"{parser.prog} has no {needs}: see --help")
    return found.line("flag"), j


def peer_answers(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """One answer for each MMDetection / Detectron2 flag of ``argv`` that ``parser`` lacks (``--cfg-options
    k=v``, ``--eval-only``) and, for a tool of fixed positionals, each Detectron2 ``KEY VALUE`` pair."""
    answers, i, fixed, seen = [], 0, _fixed_positionals(parser), 0
    while i < len(argv) and argv[i] != "--":
        token = argv[i]
        action = _flag_action(parser, token.partition("=")[0]) if token.startswith("--") else None
        if action is not None:  # the tool's own flag: its values are never habits
            i += 1 + (0 if "=" in token else _takes(action, argv[i + 1 :]))
            continue
        if token.startswith("--"):
            answer, i = _peer_flag(parser, argv, i)
            answers += [answer] if answer else []
            seen += bool(answer) and token.startswith("--config-file")  # (its value is the CONFIG positional)
        elif fixed is not None and seen >= fixed and _d2_pair(argv, i):  # after the tool's own positionals
            fix = words_to_set([(token, argv[i + 1])])
            answers.append(PeerName(f"{token} {argv[i + 1]}", D2, fix).line("KEY VALUE override"))
            i += 2
        else:
            seen += not token.startswith("-") or token == "-"
            i += 1
    return answers


def refuse_peer_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Exit 2 when ``argv`` holds MMDetection / Detectron2 flags or overrides that ``parser`` lacks: one line each,
    ``prog: error: --eval-only is Detectron2's flag; ...`` (docs/training.md, "Coming from MMDetection /
    Detectron2"). A parser with subcommands leaves it to them; ``--help`` wins."""
    argv = [str(a) for a in argv]
    subcommands = any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)  # noqa: SLF001
    if subcommands or {"-h", "--help"} & set(argv):
        return
    answers = peer_answers(parser, argv)
    if not answers:
        return
    if not other_process():
        print("\n".join(as_invoked(f"{parser.prog}: error: {a}") for a in answers), file=sys.stderr)
    raise SystemExit(USER_EXIT)
