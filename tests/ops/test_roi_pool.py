"""multiscale_roi_align equals torchvision's MultiScaleRoIAlign for box lists and padded boxes."""

import torch
from torchvision.ops import MultiScaleRoIAlign

from detkit.ops.roi_pool import boxes_to_rois, multiscale_roi_align


def test_equals_torchvision_multiscale_roi_align():
    torch.manual_seed(0)
    strides = (4, 8, 16, 32)
    feats = [torch.randn(2, 8, 128 // s, 160 // s) for s in strides]
    boxes = [torch.tensor([[0.0, 0.0, 10.0, 12.0], [5.0, 5.0, 150.0, 120.0]]), torch.tensor([[20.0, 30.0, 90.0, 60.0]])]
    ref = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)(
        {str(i): f for i, f in enumerate(feats)}, boxes, [(128, 160)] * 2
    )
    got = multiscale_roi_align(feats, boxes_to_rois(boxes), strides, 7, 2)
    assert torch.equal(got, ref)
    # the same boxes padded to [B,K,4]: the filled rows are the same RoIs
    padded = torch.zeros(2, 2, 4)
    padded[0], padded[1, :1] = boxes[0], boxes[1]
    rois = boxes_to_rois(padded)
    assert rois[:, 0].tolist() == [0, 0, 1, 1]
    assert torch.equal(multiscale_roi_align(feats, rois, strides, 7, 2)[:3], ref)
