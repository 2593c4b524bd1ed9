"""detkit.inference.runner.image_sample: the public sample of an image without annotations (check_parts_fit's)."""

import numpy as np

from detkit.data.collate import collate
from detkit.inference import runner


def test_image_sample_is_public_and_collates():
    assert "image_sample" in runner.__all__
    image = np.full((20, 30, 3), 7, np.uint8)
    sample = runner.image_sample(image, 4)
    assert sample["image"] is image and sample["image_id"] == 4 and tuple(sample["orig_size"]) == (20, 30)
    assert sample["boxes"].shape == (0, 4) and sample["labels"].shape == (0,)
    batch = collate([sample])
    assert batch["images"].shape[:2] == (1, 3) and [tuple(s) for s in batch["image_sizes"]] == [(20, 30)]
