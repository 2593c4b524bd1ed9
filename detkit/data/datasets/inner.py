"""The inner dataset of a wrapper (``MixDataset``, ``TiledDataset``): options given to the wrapper reach it."""

from __future__ import annotations

from typing import Any

__all__ = ["inner_dataset_config"]

# a key of the inner dataset that finds its data itself -> the wrapper-level keys it leaves no place for
FINDS_ITS_DATA = {"data_yaml": ("ann_file", "img_dir")}


def inner_dataset_config(dataset: dict | Any, owner: str, **given: Any) -> dict | Any:
    """``dataset`` (a config dict) with the wrapper-level options ``given`` (not None) filled in.

    So ``data.train.ann_file`` or ``data.train.on_error`` work for a wrapped dataset as for a plain one.
    A value given both at the wrapper and in the inner config must agree. A value the inner dataset's type
    does not take (``ann_file`` for a ``YOLODataset`` or ``VOCDataset``), or one its config replaces
    (``ann_file`` or ``img_dir`` beside ``dataset.data_yaml``), is a ValueError naming both keys. A built
    dataset is returned as it is, when it already has the given values (else a ValueError says to build
    it with them).
    """
    given = {k: v for k, v in given.items() if v is not None}
    if not isinstance(dataset, dict):
        for k, v in given.items():
            have = getattr(dataset, k, None)
            if have is None or str(have) != str(v):
                raise ValueError(
                    f"{owner}: {k}={v!r} applies to a dataset config, but the {type(dataset).__name__} "
                    f"given is already built (with {k}={have!r}); build it with {k}={v!r}"
                )
        return dataset
    for k, v in given.items():
        _check_taken(dataset, owner, k, v)
        if dataset.get(k) is not None and str(dataset[k]) != str(v):
            raise ValueError(f"{owner}: {k} is given twice ({v!r} and dataset.{k}={dataset[k]!r}); give one")
    return {**dataset, **given}


def _check_taken(dataset: dict, owner: str, key: str, value: Any) -> None:
    """A ValueError when the inner ``dataset`` config has no place for the wrapper's ``key=value``."""
    fix = f"set the {owner}'s {key} to null or remove it (e.g. --set data.train.{key}=null)"
    for own, replaced in FINDS_ITS_DATA.items():
        if key in replaced and dataset.get(own) is not None:
            raise ValueError(
                f"{owner}: {key}={value!r} and dataset.{own}={dataset[own]!r} are both given, but the "
                f"{dataset.get('type', 'inner dataset')} finds its images and labels through {own}; {fix}"
            )
    if not _takes(_dataset_class(dataset.get("type")), key):
        raise ValueError(
            f"{owner}: {key}={value!r} is given to the {owner}, but its dataset {dataset['type']} takes no {key} "
            f"(it is no argument of {dataset['type']}); {fix}"
        )


def _dataset_class(name: Any) -> type | None:
    """The registered dataset class ``name``; None when there is none (the build names the mistake)."""
    from detkit.registry import DATASETS

    return DATASETS.get(name) if isinstance(name, str) and name in DATASETS else None


def _takes(cls: type | None, key: str) -> bool:
    """Whether ``cls(key=...)`` is accepted, as :func:`detkit.config_check.accepted` reads it (a named parameter,
    a key of its ``**options: Unpack[TypedDict]``, any key for plain ``**kwargs``); True when unknown."""
    from detkit.config_check import accepted

    if cls is None:
        return True
    try:
        params, takes_any, _ = accepted(cls)
    except (TypeError, ValueError):  # no signature to read: the constructor decides
        return True
    return takes_any or key in params
