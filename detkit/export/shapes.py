"""The output shapes an exported graph declares: a name for each dynamic axis, a number for every other dim.

torch's exporter declares what its shape inference finds, which can be wrong: dims it cannot follow get
generated names (``Reshapeboxes_dim_2`` for the 4 of ``boxes`` [B,K,4]) or another axis's name (Mask R-CNN's
``masks`` [B,K,28,28] came out as ``['batch', 100, 'batch', 'Reshapemasks_dim_3']``). The export therefore
writes the shapes itself: the wrapper's ``dynamic_axes`` name the axes that follow the input, and the wrapper
run on two inputs (the example, and another batch and size) gives the sizes of the others and shows that
they are constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from detkit.export.common import ExportError

__all__ = ["declared_output_shapes", "write_output_shapes"]


def _run(module: nn.Module, inputs: Sequence[Tensor]) -> dict[str, list[int]]:
    """Each output's shape (by name) of ``module`` on ``inputs``."""
    with torch.no_grad():
        outputs = module(*inputs)
    return {name: list(t.shape) for name, t in zip(module.output_names, outputs)}


def declared_output_shapes(module: nn.Module, example: Sequence[Tensor], dynamic: bool) -> dict[str, list]:
    """Each output's shape as the graph declares it: ints for a static graph (the example's); for a dynamic
    one the wrapper's ``dynamic_axes`` names, and the sizes of the other dims.

    Raises:
        ExportError: a ``dynamic_axes`` entry for a dim that its output lacks, or a dim that changes with the
            input size or batch but has no name there (a wrapper's mistake: its graph would declare a wrong size).
    """
    shapes = _run(module, example)
    if not dynamic:
        return shapes
    images = example[0]
    d = int(getattr(module, "size_divisor", 32))
    other = _run(module, module.example_inputs(images.shape[0] + 1, (images.shape[2] + d, images.shape[3] + 2 * d)))
    out: dict[str, list] = {}
    for name, dims in shapes.items():
        axes = dict(module.dynamic_axes.get(name, {}))
        beyond = sorted(a for a in axes if not -len(dims) <= a < len(dims))
        if beyond:
            raise ExportError(
                f"{type(module).__name__}: dynamic_axes names dim {beyond} of output {name!r}, which has "
                f"{len(dims)} dims (shape {dims})"
            )
        axes = {a % len(dims): n for a, n in axes.items()}
        for i, (a, b) in enumerate(zip(dims, other[name])):
            if i not in axes and a != b:
                raise ExportError(
                    f"{type(module).__name__}: dim {i} of output {name!r} changes with the input ({a} -> {b}) but "
                    "has no name in dynamic_axes: name it there"
                )
        out[name] = [axes.get(i, size) for i, size in enumerate(dims)]
    return out


def write_output_shapes(proto: Any, shapes: dict[str, list]) -> None:
    """Replace the declared shape of each graph output of the ONNX ``proto`` by ``shapes[name]`` (str: a named
    dynamic dim, int: a fixed size)."""
    for output in proto.graph.output:
        if output.name not in shapes:
            continue
        shape = output.type.tensor_type.shape
        shape.ClearField("dim")
        for size in shapes[output.name]:
            dim = shape.dim.add()
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = int(size)
