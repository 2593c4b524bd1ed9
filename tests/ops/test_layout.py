import pytest
import torch

from detkit.ops.layout import cat_channels

CL = torch.channels_last


def _parts(layout, dtype=torch.float32, sizes=(3, 5, 2)):
    g = torch.Generator().manual_seed(0)
    return [
        torch.randn(2, c, 4, 6, generator=g, dtype=dtype).contiguous(memory_format=layout).requires_grad_()
        for c in sizes
    ]


@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
def test_values_and_gradients_equal_torch_cat(layout):
    parts = _parts(layout)
    ref = [p.detach().clone().requires_grad_() for p in parts]
    out, expected = cat_channels([p * 1 for p in parts], dense=[0, 1, 2]), torch.cat([r * 1 for r in ref], 1)
    assert torch.equal(out, expected)
    w = torch.randn(out.shape)
    (out * w).sum().backward()
    (expected * w).sum().backward()
    for p, r in zip(parts, ref):
        assert torch.equal(p.grad, r.grad)


def test_gradcheck_channels_last():
    parts = _parts(CL, torch.float64)
    assert torch.autograd.gradcheck(lambda *xs: cat_channels(list(xs), dense=[0, 2]), parts)


def _grads_handed_to_parts(cat):
    """The gradients a channels_last weighted sum hands each (non-leaf) part, in part order."""
    parts = _parts(CL)
    seen = {}
    mids = [p * 2 for p in parts]  # non-leaf parts, as a network's maps are
    for i, m in enumerate(mids):
        m.register_hook(lambda g, i=i: seen.__setitem__(i, g))
    out = cat(mids)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).contiguous(
        memory_format=CL
    )  # a conv's backward hands over channels_last
    (out * w).sum().backward()
    return [seen[i] for i in range(len(mids))], mids


def test_parts_get_dense_channels_last_gradients():
    grads, mids = _grads_handed_to_parts(lambda xs: cat_channels(xs, dense=[0, 1, 2]))
    for g, m in zip(grads, mids):
        assert g.shape == m.shape
        assert g.is_contiguous(memory_format=CL)
    plain, _ = _grads_handed_to_parts(lambda xs: torch.cat(xs, 1))  # torch.cat's: strided channel slices
    assert not any(g.is_contiguous(memory_format=CL) for g in plain)
    for a, b in zip(grads, plain):
        assert torch.equal(a, b)


def test_plain_cat_where_the_dense_copies_do_not_pay():
    nchw = cat_channels([p * 1 for p in _parts(torch.contiguous_format)], dense=[0])
    assert type(nchw.grad_fn).__name__ == "CatBackward0"
    with torch.no_grad():
        assert cat_channels(_parts(CL), dense=[0]).grad_fn is None
    assert type(cat_channels([p * 1 for p in _parts(CL)], dense=[0]).grad_fn).__name__ != "CatBackward0"


def test_parts_without_grad():
    parts = _parts(CL)
    frozen = parts[1].detach()
    out = cat_channels([parts[0] * 1, frozen, parts[2] * 1], dense=[0, 1, 2])
    out.sum().backward()
    assert parts[0].grad is not None and parts[2].grad is not None
    assert torch.equal(parts[2].grad, torch.ones_like(parts[2]))


def test_only_the_named_parts_are_copied():
    grads, _ = _grads_handed_to_parts(lambda xs: cat_channels(xs, dense=[-1]))
    assert [g.is_contiguous(memory_format=CL) for g in grads] == [False, False, True]


def test_chunks_of_a_channels_last_map_as_in_c2f():
    """C2f concatenates cv1's two chunks (channel slices, not channels_last-contiguous) with bottleneck outputs."""
    x = torch.randn(2, 8, 4, 6).contiguous(memory_format=CL).requires_grad_()
    y0, y1 = (x * 1).chunk(2, 1)
    last = y1 * 2
    seen = {}
    last.register_hook(lambda g: seen.__setitem__("last", g))
    out = cat_channels([y0, y1, last], dense=[-1])
    assert type(out.grad_fn).__name__ != "CatBackward0"
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).contiguous(memory_format=CL)
    (out * w).sum().backward()
    assert seen["last"].is_contiguous(memory_format=CL)
    ref = x.detach().clone().requires_grad_()
    r0, r1 = (ref * 1).chunk(2, 1)
    (torch.cat([r0, r1, r1 * 2], 1) * w).sum().backward()
    assert torch.equal(x.grad, ref.grad)
