"""Balanced positive/negative sampling."""

import torch

from detkit.ops.sampler import sample_pos_neg


def test_counts_and_membership():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(-1, 2, (3, 1000), generator=gen)
    labels[1, labels[1] == 1] = 0
    labels[1, :5] = 1  # only 5 positives in image 1: negatives fill the batch
    pos, neg = sample_pos_neg(labels, 256, 0.25, generator=gen)
    assert pos.dtype == torch.bool and pos.shape == labels.shape
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert not (pos & neg).any()
    assert pos[0].sum() == 64 and neg[0].sum() == 192
    assert pos[1].sum() == 5 and neg[1].sum() == 251


def test_few_elements_and_1d():
    labels = torch.tensor([1, 0, -1, 0, 2, -1])
    pos, neg = sample_pos_neg(labels, 256, 0.5)
    assert torch.equal(pos, labels >= 1) and torch.equal(neg, labels == 0)
    pos, neg = sample_pos_neg(torch.full((2, 10), -1), 4, 0.5)
    assert not pos.any() and not neg.any()


def test_uniform_and_reproducible():
    labels = torch.ones(1, 20, dtype=torch.int64)
    hits = torch.zeros(20)
    gen = torch.Generator().manual_seed(1)
    for _ in range(400):
        hits += sample_pos_neg(labels, 10, 0.5, generator=gen)[0][0].float()
    freq = hits / 400  # each of 20 positives is drawn with probability 5/20
    assert (freq - 0.25).abs().max() < 0.1
    a = sample_pos_neg(labels, 10, 0.5, generator=torch.Generator().manual_seed(3))[0]
    b = sample_pos_neg(labels, 10, 0.5, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(a, b)
