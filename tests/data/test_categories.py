"""detkit.data.categories.CategoryIndex: categories sorted by id give the labels, names and id <-> label maps."""

import pytest

from detkit.data.categories import CategoryIndex


def test_labels_follow_the_ids_order_not_the_file_order():
    cats = CategoryIndex([{"id": 7, "name": "dog"}, {"id": 2, "name": "cat"}, {"id": 40, "name": 3}])
    assert len(cats) == 3
    assert cats.cat_ids == [2, 7, 40]
    assert cats.names == ["cat", "dog", "3"]  # str of each name
    assert cats.cat_id_to_label == {2: 0, 7: 1, 40: 2}
    assert cats.label_to_cat_id == {0: 2, 1: 7, 2: 40}
    assert [c["name"] for c in cats.records] == ["cat", "dog", 3]  # the records themselves, unchanged


def test_equal_ids_keep_their_file_order_and_the_last_wins_the_map():
    cats = CategoryIndex([{"id": 2, "name": "b"}, {"id": 1, "name": "x"}, {"id": 1, "name": "y"}])
    assert cats.names == ["x", "y", "b"]  # stable sort
    assert cats.cat_id_to_label == {1: 1, 2: 2}


def test_empty_and_unchecked_records():
    assert len(CategoryIndex([])) == 0 and not CategoryIndex([]) and CategoryIndex({}.values()).names == []
    with pytest.raises(KeyError):
        CategoryIndex([{"name": "no id"}, {"id": 1, "name": "a"}])
    with pytest.raises(TypeError):
        CategoryIndex([{"id": 1, "name": "a"}, {"id": "2", "name": "b"}])
    nameless = CategoryIndex([{"id": 1}])  # the name is read only when asked for
    assert nameless.cat_ids == [1]
    with pytest.raises(KeyError):
        nameless.names  # noqa: B018
