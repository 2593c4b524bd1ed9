"""compile_model: the dense parts compiled in place (keys unchanged, outputs equal), eager fallbacks with a warning.

The wiring is tested with torch.compile's "eager" / "aot_eager" backends (tracing without code generation:
seconds); the one inductor test is marked slow (a minute or more on 2 cores): ``pytest -m slow
tests/models/test_compile.py`` or ``make test-all``.
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import pytest
import torch
from torch import nn

from detkit.models.compile import compile_model, compiled_parts, cpp_compiler, decompile_model
from detkit.models.detectors.one_stage import OneStageDetector
from detkit.models.detectors.two_stage import TwoStageDetector


def _yolo() -> OneStageDetector:
    torch.manual_seed(0)
    return OneStageDetector(
        backbone={"type": "CSPDarknet", "scale": "n"},
        neck={"type": "PAFPN", "num_blocks": 1},
        head={"type": "YOLOHead"},
        num_classes=3,
    )


def _batch(size: int = 64, n: int = 2) -> dict:
    g = torch.Generator().manual_seed(1)
    boxes = torch.tensor([[4.0, 6.0, 40.0, 50.0], [20.0, 10.0, 60.0, 30.0]])
    return {
        "images": torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
        "image_sizes": [(size, size)] * n,
        "orig_sizes": [(size, size)] * n,
        "targets": [{"boxes": boxes, "labels": torch.tensor([0, 2])} for _ in range(n)],
    }


@contextlib.contextmanager
def no_fallback():
    """Fails when compile_model warns (a part fell back to eager); torch's own warnings pass."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        yield
    messages = [str(w.message) for w in rec if str(w.message).startswith("compile_model:")]
    assert not messages, messages


def _step(model: nn.Module, batch: dict) -> tuple[dict, dict]:
    """Losses and gradients of one backward pass."""
    model.zero_grad(set_to_none=True)
    losses = model.loss(batch)
    sum(losses.values()).backward()
    return {k: v.detach() for k, v in losses.items()}, {n: p.grad for n, p in model.named_parameters()}


def test_yolo_keys_unchanged_and_training_and_inference_equal_eager():
    eager = _yolo()
    model = copy.deepcopy(eager)
    keys = list(model.state_dict())
    with no_fallback():  # every part compiles
        assert compile_model(model, backend="aot_eager") is model
        assert compiled_parts(model) == ("backbone", "neck", "head")
        assert list(model.state_dict()) == keys  # no _orig_mod. prefix: checkpoints load both ways
        batch = _batch()
        losses, grads = _step(model.train(), batch)
        ref_losses, ref_grads = _step(eager.train(), batch)
    for k in ref_losses:
        torch.testing.assert_close(losses[k], ref_losses[k], rtol=1e-5, atol=1e-6)
    for name, g in ref_grads.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-6)
    for m in (model.eval(), eager.eval()):
        m.optimize_for_inference()  # the fused fast path traces too
    ours, ref = model.predict(batch, score_thr=0.0), eager.predict(batch, score_thr=0.0)
    torch.testing.assert_close(ours[0]["scores"], ref[0]["scores"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours[1]["boxes"], ref[1]["boxes"], rtol=1e-5, atol=1e-4)
    # a checkpoint of the compiled model loads strictly into an eager one, and back
    eager.load_state_dict(model.state_dict(), strict=True)
    model.load_state_dict(_yolo().state_dict(), strict=True)


def test_compiled_training_under_bf16_autocast_equals_eager_under_it():
    """train.compile with train.amp=bf16: the compiled parts trace under the autocast around them (the same
    bf16 ops as eager) and every trainable weight gets a float32 gradient."""
    eager = _yolo().train()
    model = compile_model(copy.deepcopy(eager), backend="aot_eager")
    batch = _batch()
    out = {}
    for name, m in (("compiled", model), ("eager", eager)):
        m.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            losses = m.loss(batch)
            total = sum(v.float() for v in losses.values())
        total.backward()
        out[name] = (float(total.detach()), {n: p.grad for n, p in m.named_parameters()})
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # autocast really reached the network
        assert model.backbone(model.preprocess(batch))[-1].dtype == torch.bfloat16
    assert out["compiled"][0] == pytest.approx(out["eager"][0], rel=1e-3)
    for n, g in out["eager"][1].items():
        assert out["compiled"][1][n] is not None and out["compiled"][1][n].dtype == torch.float32, n
        torch.testing.assert_close(out["compiled"][1][n], g, rtol=2e-2, atol=1e-3 * g.abs().max().item() + 1e-6)


def test_deepcopy_is_eager_and_decompile_restores_eager():
    from detkit.engine.ema import ModelEMA

    model = compile_model(_yolo(), backend="eager")
    ema = ModelEMA(model)  # deepcopy: nn.Module.__getstate__ drops the compiled call
    assert ema.module.backbone._compiled_call_impl is None and compiled_parts(ema.module) == ()
    ema.update(model)
    assert list(ema.module.state_dict()) == list(model.state_dict())
    assert model.backbone._compiled_call_impl is not None
    decompile_model(model)
    assert compiled_parts(model) == () and all(getattr(model, n)._compiled_call_impl is None for n in ("neck", "head"))


def _faster_rcnn() -> TwoStageDetector:
    torch.manual_seed(0)
    return TwoStageDetector(
        backbone={"type": "ResNet", "depth": 18, "norm": "FrozenBN", "frozen_stages": 1},
        neck={"type": "FPN", "in_channels": [64, 128, 256, 512], "out_channels": 32},
        rpn_head={"type": "RPNHead", "in_channels": 32},
        box_head={"type": "RoIBoxHead", "in_channels": 32, "representation_size": 64},
        num_classes=3,
    )


def test_two_stage_compiles_the_dense_parts_and_keeps_the_roi_heads_eager():
    eager = _faster_rcnn().eval()
    model = compile_model(copy.deepcopy(eager), backend="eager")
    assert compiled_parts(model) == ("backbone", "neck", "rpn_head")
    assert model.box_head._compiled_call_impl is None  # RoIAlign over a per-image number of proposals
    batch = _batch(96, 1)
    ours, ref = model.predict(batch), eager.predict(batch)
    assert len(ref[0]["boxes"]) > 0
    torch.testing.assert_close(ours[0]["boxes"], ref[0]["boxes"])
    torch.testing.assert_close(ours[0]["scores"], ref[0]["scores"])


def _failing_backend(gm, example_inputs):
    raise RuntimeError("no code generator here")


def test_a_part_that_fails_to_compile_warns_once_and_runs_eager():
    eager = _yolo().eval()
    model = compile_model(copy.deepcopy(eager), backend=_failing_backend, parts=["neck"])
    x = torch.rand(1, 3, 64, 64)
    expected = "neck could not be compiled.*no code generator here.*runs eager"
    with pytest.warns(RuntimeWarning, match=expected) as rec, torch.no_grad():
        out = model.forward_raw(x)
    assert len([w for w in rec if "could not be compiled" in str(w.message)]) == 1
    assert model.neck._compiled_call_impl is None and compiled_parts(model) == ()  # eager from now on
    with no_fallback(), torch.no_grad():
        again = model.forward_raw(x)
        ref = eager.forward_raw(x)
    for a, b, r in zip(out, again, ref):
        assert torch.equal(a, r) and torch.equal(b, r)


def test_an_input_error_is_raised_as_eager_raises_it_without_a_fallback():
    model = compile_model(_faster_rcnn(), backend="eager")
    feats = [torch.rand(1, 32, 8, 8)] * 2  # the RPN has anchor sizes for five levels
    with no_fallback(), pytest.raises(ValueError, match="anchor sizes for 5 levels"):
        model.rpn_head(feats)
    assert model.rpn_head._compiled_call_impl is not None  # still compiled


def test_without_a_cpp_compiler_nothing_is_compiled_and_one_warning_says_so(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    assert cpp_compiler() is None
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found") as rec:
        model = compile_model(_yolo())
    assert len(rec) == 1 and compiled_parts(model) == ()
    assert all(getattr(model, n)._compiled_call_impl is None for n in ("backbone", "neck", "head"))


def test_unknown_part_is_an_error():
    with pytest.raises(ValueError, match="no part 'decode_head'"):
        compile_model(_yolo(), backend="eager", parts=["decode_head"])


def test_ddp_wrap_after_compiling_trains(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        model = compile_model(_yolo(), backend="aot_eager")
        ddp = nn.parallel.DistributedDataParallel(model)
        losses = ddp(_batch())
        sum(losses.values()).backward()
        assert all(p.grad is not None for p in model.head.parameters())
        assert compiled_parts(ddp) == ("backbone", "neck", "head")
        decompile_model(ddp)  # a wrapped model: its module's parts
        assert compiled_parts(model) == () and compile_model(ddp, backend="eager") is ddp
        assert compiled_parts(model) == ("backbone", "neck", "head")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(cpp_compiler() is None, reason="inductor needs a C++ compiler")
def test_inductor_matches_eager_on_a_small_yolo():
    eager = _yolo().eval()
    model = compile_model(copy.deepcopy(eager))
    x = torch.rand(1, 3, 64, 64)
    with no_fallback(), torch.no_grad():
        out = model.forward_raw(x)
    with torch.no_grad():
        ref = eager.forward_raw(x)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
