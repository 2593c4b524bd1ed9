"""ClsHead and Classifier: the head / detector contract, predict shapes and top-k, batch mixing, a falling loss."""

from __future__ import annotations

import pytest
import torch

import detkit.models  # noqa: F401  (registers the parts)
from detkit.models.batch_mix import BatchMix
from detkit.models.build import build_model
from detkit.models.detectors.classifier import Classifier
from detkit.models.heads.cls import ClsHead

RESNET = {"type": "ResNet", "depth": 18, "norm": "BN", "frozen_stages": -1, "out_indices": [3]}
BACKBONES = {
    "resnet": RESNET,
    "cspdarknet": {"type": "CSPDarknet", "scale": "n", "out_indices": [3, 4]},
    "timm": {"type": "TimmBackbone", "model_name": "resnet18", "out_indices": [3, 4]},
}


def _batch(n: int = 4, num_classes: int = 3, size: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "images": torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
        "image_sizes": [(size, size)] * n,
        "targets": [{"boxes": torch.zeros(0, 4), "labels": torch.tensor([i % num_classes])} for i in range(n)],
        "image_ids": list(range(10, 10 + n)),
    }


def test_head_pools_the_chosen_maps_and_never_branches_on_training():
    feats = [torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4)]
    head = ClsHead(num_classes=5, in_channels=[8, 16], in_index=[0, -1])
    assert head.fc.in_features == 24
    logits = head(feats)
    assert logits.shape == (2, 5)
    expected = head.fc(torch.cat([feats[0].mean((2, 3)), feats[1].mean((2, 3))], 1))
    torch.testing.assert_close(logits, expected)
    head.eval()
    torch.testing.assert_close(head(feats), logits)  # no dropout: the same in both modes
    last = ClsHead(num_classes=5, in_channels=[8, 16])  # default: the last map only
    assert last.fc.in_features == 16


def test_head_loss_takes_class_indices_or_probabilities_with_label_smoothing():
    head = ClsHead(num_classes=4, in_channels=8, label_smoothing=0.1, loss_weight=2.0)
    logits = torch.randn(3, 4)
    labels = torch.tensor([0, 3, 1])
    hard = head.loss(logits, labels)
    assert set(hard) == {"cls/ce"}
    ref = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1) * 2
    torch.testing.assert_close(hard["cls/ce"], ref)
    soft = head.loss(logits, torch.nn.functional.one_hot(labels, 4).float())["cls/ce"]
    torch.testing.assert_close(soft, ref)
    with pytest.raises(ValueError, match=r"class label\(s\) \[7\] outside 0..3"):
        head.loss(logits, torch.tensor([0, 7, 1]))
    with pytest.raises(ValueError, match=r"soft targets must be \[B,C\]"):
        head.loss(logits, torch.ones(3, 5) / 5)


def test_head_predict_gives_probabilities_and_the_topk_classes_in_order():
    head = ClsHead(num_classes=6, in_channels=8)
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0, 0.5]])
    (pred,) = head.predict(logits, topk=3)
    assert pred["scores"].dtype == torch.float32 and pred["scores"].shape == (6,)
    assert float(pred["scores"].sum()) == pytest.approx(1.0)
    assert pred["labels"].dtype == torch.int64 and pred["labels"].tolist() == [1, 3, 2]
    assert head.predict(logits, topk=50)[0]["labels"].shape == (6,)  # at most C


def test_head_rejects_levels_it_does_not_have():
    with pytest.raises(ValueError, match="in_index"):
        ClsHead(num_classes=3, in_channels=[8, 16], in_index=2)
    head = ClsHead(num_classes=3, in_channels=[8, 16])
    with pytest.raises(ValueError, match="built for 2 feature maps"):
        head([torch.randn(1, 16, 2, 2)])


@pytest.mark.parametrize("name", list(BACKBONES))
def test_classifier_contract_on_every_backbone(name):
    model = Classifier(backbone=BACKBONES[name], head={"type": "ClsHead", "dropout": 0.2}, num_classes=3)
    assert model.neck is None and model.head.num_classes == 3 and model.topk == 3
    batch = _batch()
    model.train()
    losses = model(batch)
    assert set(losses) == {"cls/ce"} and losses["cls/ce"].requires_grad
    model.eval()
    preds = model(batch)
    assert len(preds) == 4
    for p in preds:
        assert p["scores"].shape == (3,) and p["labels"].shape == (3,) and p["labels"].dtype == torch.int64
        assert int(p["labels"][0]) == int(p["scores"].argmax())
    assert model.predict(batch, topk=1)[0]["labels"].shape == (1,)


def test_topk_defaults_to_five_or_every_class():
    many = build_model(
        {"model": {"type": "Classifier", "num_classes": 10, "backbone": RESNET, "head": {"type": "ClsHead"}}}
    )
    assert many.topk == 5 and many.class_names[0] == "class_0"
    assert many.eval().predict(_batch(2, 10))[0]["labels"].shape == (5,)
    two = Classifier(backbone=RESNET, head={"type": "ClsHead"}, num_classes=2, topk=4)
    assert two.topk == 2
    with pytest.raises(ValueError, match="head.num_classes=4"):
        Classifier(backbone=RESNET, head={"type": "ClsHead", "num_classes": 4}, num_classes=3)


def test_a_target_without_exactly_one_label_is_named():
    model = Classifier(backbone=RESNET, head={"type": "ClsHead"}, num_classes=3)
    batch = _batch()
    batch["targets"][2]["labels"] = torch.zeros(0, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"target 2 of the batch \(image id 12\) has 0 labels"):
        model.loss(batch)


def test_loss_falls_on_a_tiny_batch():
    torch.manual_seed(0)
    model = Classifier(backbone=RESNET, head={"type": "ClsHead", "label_smoothing": 0.1}, num_classes=3)
    batch = _batch(6)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    first = None
    for _ in range(15):
        loss = model(batch)["cls/ce"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model(batch)["cls/ce"].item() < 0.5 * first
    model.eval()
    assert [int(p["labels"][0]) for p in model(batch)] == [0, 1, 2, 0, 1, 2]


def test_batch_mix_is_a_function_of_the_seed_and_the_image_ids():
    images, labels = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    mix = BatchMix(3, mixup_alpha=0.4, cutmix_alpha=1.0, seed=1)
    state = torch.get_rng_state()
    a_img, a_lab = mix(images.clone(), labels, [1, 2, 3, 4, 5, 6])
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    b_img, b_lab = mix(images.clone(), labels, [1, 2, 3, 4, 5, 6])
    torch.testing.assert_close(a_img, b_img)
    torch.testing.assert_close(a_lab, b_lab)
    assert a_lab.shape == (6, 3) and torch.allclose(a_lab.sum(1), torch.ones(6))
    draws = {tuple(mix(images.clone(), labels, [i, 2, 3, 4, 5, 6])[1][0].tolist()) for i in range(20, 30)}
    assert len(draws) > 1  # other ids, other draws
    none = BatchMix(3, mixup_alpha=0.4, prob=0.0)
    n_img, n_lab = none(images.clone(), labels, [1, 2, 3, 4, 5, 6])
    torch.testing.assert_close(n_img, images)
    torch.testing.assert_close(n_lab, torch.nn.functional.one_hot(labels, 3).float())


def test_batch_mix_leaves_the_gpu_generators_alone(monkeypatch):
    """torch.manual_seed reseeds every GPU's generator too, which fork_rng(devices=[]) does not restore."""
    seeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: seeded.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: seeded.append(seed))
    images, labels = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    BatchMix(3, mixup_alpha=0.4, cutmix_alpha=1.0, seed=1)(images, labels, [1, 2, 3, 4])
    assert seeded == []


def test_mixup_mixes_consecutive_images_with_one_weight():
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2).contiguous()
    labels = torch.tensor([0, 1, 2, 3])
    out, soft = BatchMix(4, mixup_alpha=1.0, seed=3)(images, labels, [0, 1, 2, 3])
    lam = float(soft[0, 0])
    assert 0 < lam < 1
    torch.testing.assert_close(soft[1, [1, 0]], torch.tensor([lam, 1 - lam]))  # image 1 mixed with image 0
    torch.testing.assert_close(out[1], lam * images[1] + (1 - lam) * images[0])


def test_classifier_loss_with_mixing_is_reproducible():
    model = Classifier(backbone=RESNET, head={"type": "ClsHead"}, num_classes=3, mixup_alpha=0.2, cutmix_alpha=1.0)
    model.eval()  # BN statistics fixed: the loss depends only on the batch and the mix
    batch = _batch(6)
    torch.testing.assert_close(model.loss(batch)["cls/ce"], model.loss(batch)["cls/ce"])
    plain = Classifier(backbone=RESNET, head={"type": "ClsHead"}, num_classes=3)
    plain.load_state_dict(model.state_dict())
    plain.eval()
    assert not torch.allclose(plain.loss(batch)["cls/ce"], model.loss(batch)["cls/ce"])
