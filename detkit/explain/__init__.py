"""Class-activation maps for detkit's detectors, segmentors and classifiers, on the grad-cam package.

``detkit.explain(model, image, method, target_layer, score_thr, max_dets, target_class=, target_box=)`` returns
the predictions plus ``heatmaps`` [K,H,W]; ``pointing_game`` / ``randomized_copy`` measure whether maps point at
the objects. detkit writes only the adapters (``adapters``: what a model's forward gives the targets;
``targets``: one detection's score and box; ``choice``: a chosen class or box; ``layers``: pyramid levels merged
into one map); the CAM algorithms are the library's. See docs/explain.md.
"""

import sys

from detkit.explain.api import explain, layer_names
from detkit.explain.choice import NoOverlapError
from detkit.explain.layers import ExplainError
from detkit.explain.overlay import draw_explanation
from detkit.explain.pointing import pointing_game, pointing_hits, randomized_copy
from detkit.explain.session import METHODS

__all__ = [
    "METHODS",
    "ExplainError",
    "NoOverlapError",
    "draw_explanation",
    "explain",
    "layer_names",
    "pointing_game",
    "pointing_hits",
    "randomized_copy",
]


class _CallableModule(type(sys.modules[__name__])):
    """``detkit.explain(...)`` calls :func:`explain` also once this package was imported: importing a submodule
    (``detkit.explain.layers``) sets ``detkit.explain`` to the package, which must then still be callable."""

    def __call__(self, *args, **kwargs):
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
