import pytest

from detkit.registry import BACKBONES, DATASETS, DETECTORS, HEADS, NECKS, TRANSFORMS, Registry


def test_register_get_build():
    reg = Registry("thing")

    @reg.register
    class Alpha:
        def __init__(self, a=1, b=2):
            self.a, self.b = a, b

    @reg.register(name="Beta2")
    class Beta:
        pass

    assert reg.get("Alpha") is Alpha
    assert reg.get("Beta2") is Beta
    obj = reg.build({"type": "Alpha", "a": 5}, b=7)
    assert (obj.a, obj.b) == (5, 7)
    # spec keys win over defaults
    assert reg.build({"type": "Alpha", "b": 3}, b=7).b == 3
    assert reg.build(None) is None
    assert "Alpha" in reg and len(reg) == 2


def test_duplicate_name_is_error():
    reg = Registry("thing")

    @reg.register
    class Alpha:
        pass

    with pytest.raises(KeyError, match="already registered"):
        reg.register(Alpha)


def test_unknown_name_lists_names_and_closest():
    reg = Registry("backbone")
    for name in ("ResNet", "CSPDarknet", "TimmBackbone"):
        reg.register(type(name, (), {}))
    with pytest.raises(KeyError) as e:
        reg.get("Resnet")
    msg = str(e.value)
    assert "Did you mean 'ResNet'" in msg
    assert "CSPDarknet" in msg and "TimmBackbone" in msg


def test_build_errors_are_clear():
    reg = Registry("thing")

    @reg.register
    class Alpha:
        def __init__(self, a=1):
            self.a = a

    with pytest.raises(ValueError, match="'type'"):
        reg.build({"a": 1})
    with pytest.raises(TypeError, match="Alpha"):
        reg.build({"type": "Alpha", "nope": 1})


def test_six_registries_exist():
    names = {r.name for r in (BACKBONES, NECKS, HEADS, DETECTORS, DATASETS, TRANSFORMS)}
    assert len(names) == 6
