"""Training engine: Trainer, checkpoints, optimizer and LR schedules, distributed helpers, EMA, logging."""

from detkit.engine.defaults import resolve_config
from detkit.engine.evaluate import evaluate, evaluate_checkpoint
from detkit.engine.runtime import TrainingDiverged
from detkit.engine.trainer import Trainer

__all__ = ["Trainer", "TrainingDiverged", "evaluate", "evaluate_checkpoint", "resolve_config"]
