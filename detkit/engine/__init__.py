"""Training engine: Trainer, checkpoints, optimizer and LR schedules, distributed helpers, EMA, logging."""

from detkit.engine.defaults import resolve_config
from detkit.engine.evaluate import evaluate, evaluate_checkpoint
from detkit.engine.preflight import PreflightError
from detkit.engine.runtime import TrainingDiverged
from detkit.engine.trainer import EvaluationFailed, Trainer
from detkit.engine.workdir import WorkDirInUse

__all__ = [
    "EvaluationFailed",
    "PreflightError",
    "Trainer",
    "TrainingDiverged",
    "WorkDirInUse",
    "evaluate",
    "evaluate_checkpoint",
    "resolve_config",
]
