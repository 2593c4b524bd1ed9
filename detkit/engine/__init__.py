"""Training engine: Trainer, checkpoints, optimizer and LR schedules, distributed helpers, EMA, logging."""
from detkit.engine.common import TrainingDiverged, evaluate, evaluate_checkpoint, resolve_config
from detkit.engine.trainer import Trainer

__all__ = ["Trainer", "TrainingDiverged", "evaluate", "evaluate_checkpoint", "resolve_config"]
