"""One rule for the class names users give (explain, track, a COCO dataset's kept classes): exact and any-case
names, ambiguous names, unknown names with the nearest ones, indices."""

import pytest

from detkit.utils.class_names import ClassNameError, class_index, class_indices, nearest_names

NAMES = ["circle", "rectangle", "triangle", "star", "Car", "car"]


@pytest.mark.parametrize(
    "spec, selected, one",
    [
        ("circle", [0], 0),
        ("CIRCLE", [0], 0),  # any case
        (" star ", [3], 3),  # spaces around a command-line word
        ("car", [4, 5], 5),  # every class of that name; one class: the exact spelling
        ("Car", [4, 5], 4),
        ("2", [2], 2),  # digits: an index
        (1, [1], 1),
    ],
)
def test_names_select_in_any_case_and_the_exact_spelling_picks_one(spec, selected, one):
    assert class_indices(spec, NAMES) == selected
    assert class_index(spec, NAMES) == one


def test_a_name_of_several_classes_in_other_cases_is_ambiguous_where_one_is_needed():
    with pytest.raises(
        ClassNameError, match=r"class 'CAR' names 2 classes of the model \(4 Car, 5 car\): give the exact"
    ):
        class_index("CAR", NAMES)
    with pytest.raises(ClassNameError, match="names 2 classes") as e:
        class_index("dog", ["dog", "dog"])
    assert e.value.kind == "ambiguous"


def test_a_name_is_a_name_before_it_is_an_index():
    assert class_indices("1", ["0", "1", "2"]) == [1] and class_indices("1", ["b", "1"]) == [1]
    assert class_indices("x", ["a", "x"], indices=False) == [1]
    with pytest.raises(ClassNameError, match=r"this file has no class '1' \(it has 0 a, 1 b\)"):
        class_indices("1", ["a", "b"], owner="this file", indices=False)


@pytest.mark.parametrize(
    "spec, message, kind",
    [
        (
            "circel",
            r"^the model has no class 'circel' \(nearest: circle\); its classes: 0 circle, 1 rectangle,",
            "unknown",
        ),
        (
            "tri",
            r"^the model has no class 'tri' \(it has 0 circle, 1 rectangle, 2 triangle, 3 star, 4 Car, 5 car\)$",
            "unknown",
        ),
        (6, r"^index 6 is not a class of the model \(6 classes: 0 circle, .* 5 car\)$", "out_of_range"),
        ("-1", r"^index -1 is not a class of the model", "out_of_range"),
    ],
)
def test_unknown_names_and_indices_name_the_classes(spec, message, kind):
    with pytest.raises(ClassNameError, match=message) as e:
        class_indices(spec, NAMES)
    assert e.value.kind == kind and isinstance(e.value, ValueError)


def test_suggestions_ignore_case_and_long_lists_are_cut():
    assert nearest_names("CIRCEL", NAMES) == ["circle"] and nearest_names("cars", NAMES) == ["Car", "car"]
    many = [f"class{i}" for i in range(30)]
    with pytest.raises(ClassNameError, match=r"11 class11, \.\.\. \(30 in all\)\)$"):
        class_indices("zebra", many)
    with pytest.raises(ClassNameError, match="the model has no class names to choose from"):
        class_indices("a", [])


@pytest.mark.parametrize("spec", [1.5, True, None, ["a"]])
def test_other_values_are_a_type_error(spec):
    with pytest.raises(TypeError, match=r"a class is a name or an index, got "):
        class_indices(spec, NAMES)
