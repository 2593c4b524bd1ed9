"""detkit: a PyTorch toolkit for object detection and segmentation."""

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "build_model",
    "evaluate",
    "explain",
    "init_model",
    "load_checkpoint",
    "load_config",
    "predict",
    "track",
]

_LAZY = {
    "load_config": "detkit.config",
    "build_model": "detkit.models.build",
    "init_model": "detkit.inference.api",
    "predict": "detkit.inference.api",
    "evaluate": "detkit.api",
    "load_checkpoint": "detkit.utils.checkpoint",
    "explain": "detkit.explain",
    "track": "detkit.track",
}


def __getattr__(name):
    """Import the public API on first use, so `import detkit.data.validate` does not pay for torch."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'detkit' has no attribute {name!r}")


def __dir__():
    """The module's names and the lazily imported API (for ``dir(detkit)`` and tab completion)."""
    return sorted(set(globals()) | set(_LAZY))
