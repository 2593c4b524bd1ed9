"""The inner dataset of a wrapper (``MixDataset``, ``TiledDataset``): options given to the wrapper reach it."""

from __future__ import annotations

from typing import Any

__all__ = ["inner_dataset_config"]


def inner_dataset_config(dataset: dict | Any, owner: str, **given: Any) -> dict | Any:
    """``dataset`` (a config dict) with the wrapper-level options ``given`` (not None) filled in.

    So ``data.train.ann_file`` or ``data.train.on_error`` work for a wrapped dataset as for a plain one.
    A value given both at the wrapper and in the inner config must agree. A built dataset is returned
    as it is, when it already has the given values (else a ValueError says to build it with them).
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
        if dataset.get(k) is not None and str(dataset[k]) != str(v):
            raise ValueError(f"{owner}: {k} is given twice ({v!r} and dataset.{k}={dataset[k]!r}); give one")
    return {**dataset, **given}
