"""One image made ready for class-activation maps: its batch, the normalised input, the probed layers, and the
way back from network-input pixels to the image's own pixels."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from detkit.explain.adapters import adapter_for
from detkit.explain.layers import (
    ExplainError,
    LayerInfo,
    classifier_layer,
    default_layer,
    finer_layer,
    layer_target,
    probe_layers,
    resolve_layer,
)

__all__ = ["METHODS", "CamSession", "Geometry", "cam_method", "cam_session", "prepare_batch"]

# method name -> (pytorch_grad_cam class name, uses gradients)
METHODS = {
    "eigencam": ("EigenCAM", False),
    "gradcam": ("GradCAM", True),
    "gradcam++": ("GradCAMPlusPlus", True),
    "hirescam": ("HiResCAM", True),
}
CHUNK = 4  # copies of the image per forward / backward pass of a gradient method (one target each)


def cam_method(method: str) -> tuple[type, bool]:
    """The CAM library's class for ``method`` and whether it needs gradients."""
    key = str(method).lower()
    if key not in METHODS:
        raise ExplainError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
    try:
        import pytorch_grad_cam
    except ImportError as e:
        raise ExplainError(
            f"explanations need the grad-cam package ({e}); install it with: pip install 'detkit[explain]'"
        ) from None
    name, gradients = METHODS[key]
    return getattr(pytorch_grad_cam, name), gradients


@dataclass(frozen=True)
class Geometry:
    """How network-input pixels map to the image's: ``x_input = x * sx + left`` (the sample's ``scale_factor``
    and ``pad_offset``); (h0, w0) the image, (h, w) the input inside the batch padding."""

    sx: float
    sy: float
    left: float
    top: float
    h0: int
    w0: int
    h: int
    w: int

    @classmethod
    def of_batch(cls, batch: dict) -> Geometry:
        from detkit.models.detectors.parts import batch_geometry

        scales, pads, origs = batch_geometry(batch)
        (sx, sy), (left, top), (h0, w0) = scales[0], pads[0], origs[0]
        h, w = (int(v) for v in batch["image_sizes"][0])
        if (sx, sy) == (1.0, 1.0) and (left, top) == (0, 0) and (h, w) != (h0, w0):
            sx, sy = w / w0, h / h0  # a resize that keeps no geometry (albumentations): the whole image, stretched
        return cls(float(sx), float(sy), float(left), float(top), int(h0), int(w0), h, w)

    def boxes_to_input(self, boxes: Tensor) -> Tensor:
        """Boxes [N,4] xyxy in image pixels -> network-input pixels."""
        scale = boxes.new_tensor([self.sx, self.sy, self.sx, self.sy])
        return boxes.float() * scale + boxes.new_tensor([self.left, self.top, self.left, self.top])

    def content(self, shape: Sequence[int]) -> np.ndarray:
        """float32 mask of ``shape`` (H, W): 1 where the input holds the image (not letterbox or batch padding)."""
        mask = np.zeros(tuple(shape), np.float32)
        x0, y0 = max(0, round(self.left)), max(0, round(self.top))
        x1, y1 = min(self.w, round(self.left + self.w0 * self.sx)), min(self.h, round(self.top + self.h0 * self.sy))
        mask[y0:y1, x0:x1] = 1.0
        return mask

    def to_image(self, maps: np.ndarray) -> np.ndarray:
        """Maps [K,H,W] over the network input -> float32 [K,h0,w0] over the image, each scaled to 0..1.

        Pixel centres map as ``x_input + 0.5 = (x + 0.5) * sx + left`` (bilinear, zero outside the input).
        """
        from pytorch_grad_cam.utils.image import scale_cam_image

        if len(maps) == 0:
            return np.zeros((0, self.h0, self.w0), np.float32)
        inverse = np.float32(
            [[self.sx, 0, self.left + 0.5 * self.sx - 0.5], [0, self.sy, self.top + 0.5 * self.sy - 0.5]]
        )
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped = [cv2.warpAffine(np.float32(m), inverse, (self.w0, self.h0), flags=flags) for m in maps]
        return scale_cam_image(np.stack(warped))  # min-max per map (the library's scaling)


@contextlib.contextmanager
def _plain_autograd(model: nn.Module) -> Iterator[None]:
    """Autograd through the plain modules (fused inference paths off, so every layer's hooks fire); no
    gradient kept in the parameters. Every flag, ``.grad`` and the train/eval mode are restored on exit."""
    fused = {m: m.fused_inference for m in model.modules() if hasattr(m, "fused_inference")}
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    training = model.training
    try:
        for m in fused:
            m.fused_inference = False
        for p, _, _ in params:
            p.requires_grad_(False)  # gradients flow from the input: only activations get them
        yield
    finally:
        for m, flag in fused.items():
            m.fused_inference = flag
        for p, requires_grad, grad in params:
            p.requires_grad_(requires_grad)
            p.grad = grad
        model.train(training)


def prepare_batch(model: nn.Module, image: np.ndarray) -> dict:
    """A batch of one RGB uint8 image [H,W,3] after the model's test pipeline (as ``detkit.predict`` makes it)."""
    from detkit.data.collate import collate
    from detkit.inference.runner import build_test_pipeline

    h, w = image.shape[:2]
    sample = dict(
        image=image,
        boxes=np.zeros((0, 4), np.float32),
        labels=np.zeros((0,), np.int64),
        image_id=0,
        orig_size=(h, w),
        scale_factor=(1.0, 1.0),
        pad_offset=(0, 0),
    )
    pipeline = build_test_pipeline(getattr(model, "cfg", None))
    return collate([pipeline(sample) if pipeline is not None else sample])


class CamSession:
    """CAMs of one image at one layer (made by :func:`cam_session`).

    Attributes: ``model``, ``adapter``, ``batch``, ``images`` (normalised [1,3,H,W]), ``info`` (the probed
    layers; ``info.result`` the adapter's output), ``layer`` (the layer's name), ``geometry``.
    """

    def __init__(self, model: nn.Module, adapter: nn.Module, batch: dict, images: Tensor, info: LayerInfo, layer: str):
        self.model, self.adapter, self.batch, self.images = model, adapter, batch, images
        self.info, self.layer = info, layer
        self.geometry = Geometry.of_batch(batch)

    def heatmaps(self, method: str, targets: Sequence) -> np.ndarray:
        """float32 [K,h0,w0] in 0..1: one map per target (a gradient-free method's map repeated K times)."""
        cam_class, gradients = cam_method(method)
        if not targets:
            return self.geometry.to_image(np.zeros((0, 1, 1), np.float32))
        module, reshape, tap = layer_target(self.model, self.info, self.layer)
        handle = tap.attach(self.model.get_submodule(self.layer)) if tap is not None else None
        cam = cam_class(model=self.adapter, target_layers=[module], reshape_transform=reshape)
        try:
            maps, reached = self._maps(cam, gradients, targets)
        finally:
            cam.activations_and_grads.release()
            if handle is not None:
                handle.remove()
        if all(m.max() <= m.min() for m in maps):
            self._warn_flat(method, gradients, reached)
        return self.geometry.to_image(maps)

    def _maps(self, cam, gradients: bool, targets: Sequence) -> tuple[np.ndarray, bool]:
        """The library's maps [K,h,w] (a gradient method's in chunks of ``CHUNK`` targets) and whether a non-zero
        gradient of a target reached the layer (always False without gradients)."""
        if not gradients:
            with torch.no_grad():
                return np.repeat(cam(self.images, targets=list(targets[:1])), len(targets), 0), False
        chunks, reached = [], False
        for i in range(0, len(targets), CHUNK):
            chunks.append(self._grad_maps(cam, targets[i : i + CHUNK]))
            grads = cam.activations_and_grads.gradients  # of this chunk; empty when none reached the layer
            reached = reached or any(bool(torch.as_tensor(g).abs().amax() > 0) for g in grads)
        return np.concatenate(chunks), reached

    def _warn_flat(self, method: str, gradients: bool, reached: bool) -> None:
        """Warn that every map is flat, and why: a 1x1 map, no gradient at the layer, or a gradient method's map
        that its ReLU zeroes (Grad-CAM's channels weighted by their mean gradient can sum to <= 0 everywhere
        while the gradients are there: HiResCAM, which weights each position, still shows them)."""
        out = self.info.outputs[self.layer]
        size = tuple(out.shape[-2:]) if isinstance(out, Tensor) else None
        others = " or ".join(m for m in ("hirescam", "eigencam") if m != str(method).lower())
        if size is not None and size[0] * size[1] == 1:
            finer = finer_layer(self.info, self.layer)
            use = f" (e.g. --target-layer {finer})" if finer else ""
            why = (
                f"its map is 1x1 at this input size ({self.geometry.h}x{self.geometry.w}); choose an earlier layer{use}"
            )
        elif gradients and not reached:
            why = (
                "no gradient of the targets reaches it (the explained outputs do not depend on it); "
                "choose a layer they read"
            )
        elif gradients:
            why = (
                f"the targets' gradients reach it, but {method}'s map (activations weighted by the gradients) is "
                f"<= 0 everywhere, and the method's ReLU makes it 0; try --method {others}"
            )
        else:
            why = "its activations are constant over the image"
        warnings.warn(f"the heatmaps of layer '{self.layer}' are flat: {why}", stacklevel=3)

    def _grad_maps(self, cam, targets: Sequence) -> np.ndarray:
        copies = self.images.detach().repeat(len(targets), 1, 1, 1).requires_grad_(True)
        with torch.enable_grad():
            return cam(copies, targets=list(targets))


@contextlib.contextmanager
def cam_session(model: nn.Module, image: np.ndarray, target_layer: str | None = None) -> Iterator[CamSession]:
    """Prepare ``image`` (RGB uint8 [H,W,3]) for CAMs of ``model`` at ``target_layer`` (None: the default layer)."""
    adapter = adapter_for(model)
    batch = prepare_batch(model, image)
    with _plain_autograd(model):
        images = model.preprocess(batch).detach()  # [1,3,H,W] on the model's device
        adapter.image_size = tuple(int(v) for v in batch["image_sizes"][0])
        info = probe_layers(adapter, model, images)
        if target_layer is None:
            pick = classifier_layer if adapter.kind == "classifier" else default_layer
            layer = pick(info, model, adapter.head())
        else:
            layer = resolve_layer(info, str(target_layer), type(model).__name__)
        yield CamSession(model, adapter, batch, images, info, layer)
