"""Hyperparameter search on Optuna (``tools/tune.py``, ``detkit tune``; docs/tuning.md).

A search space maps config keys to distributions (:mod:`detkit.tune.space`); each trial is an ordinary
training run in ``DIR/trial_<n>/`` that reports its metric to Optuna after each evaluation and stops when
pruned (:mod:`detkit.tune.trial`); any number of processes share one study through an Optuna storage
(:mod:`detkit.tune.study`, :mod:`detkit.tune.search`). Needs ``pip install detkit[tune]``.
"""

from detkit.tune.search import Search, SearchResult, run_search
from detkit.tune.space import Param, SpaceError, load_space
from detkit.tune.study import StudyError

__all__ = ["Param", "Search", "SearchResult", "SpaceError", "StudyError", "load_space", "run_search"]
