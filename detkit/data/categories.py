"""COCO categories in id order: the class names, and the maps between category ids and contiguous labels."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CategoryIndex"]


class CategoryIndex:
    """COCO category records sorted by id: label ``i`` (contiguous 0..C-1) is the ``i``-th of them.

    This is the numbering every part of detkit shares (``CocoDataset``, the converters, ``--gt`` files,
    ``model_stats``). The sort is stable: records with equal ids (a json that is not validated) keep their file
    order, and in ``cat_id_to_label`` the last of them wins. The records are not checked: a record without an
    ``'id'`` raises ``KeyError`` here, ids that do not compare raise ``TypeError``; ``names`` and the maps read
    ``'name'`` and hash the ids only when asked.

    Args:
        categories: the ``categories`` records (dicts with ``'id'`` and ``'name'``), in any order.
    """

    def __init__(self, categories: Iterable[dict]):
        self.records: list[dict] = sorted(categories, key=lambda c: c["id"])

    def __len__(self) -> int:
        return len(self.records)

    @property
    def cat_ids(self) -> list:
        """The category ids in label order."""
        return [c["id"] for c in self.records]

    @property
    def names(self) -> list[str]:
        """The class names in label order (``str`` of each record's ``'name'``)."""
        return [str(c["name"]) for c in self.records]

    @property
    def cat_id_to_label(self) -> dict:
        """``{category id: label}``."""
        return {cid: i for i, cid in enumerate(self.cat_ids)}

    @property
    def label_to_cat_id(self) -> dict[int, object]:
        """``{label: category id}``."""
        return dict(enumerate(self.cat_ids))
