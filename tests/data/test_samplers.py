"""GroupedBatchSampler: deterministic, aspect-grouped, sharded, resumable; InferenceSampler slices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from detkit.data.samplers import GroupedBatchSampler, InferenceSampler, aspect_groups


def ratios(n: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return rng.choice([0.5, 0.75, 1.0, 1.5], size=n).tolist()


def test_deterministic_given_seed_and_epoch():
    r = ratios(37)
    a, b = GroupedBatchSampler(r, 4, seed=5), GroupedBatchSampler(r, 4, seed=5)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    assert list(a) == list(a)  # a pass does not change the order
    b.set_epoch(4)
    assert list(a) != list(b)
    c = GroupedBatchSampler(r, 4, seed=6)
    c.set_epoch(3)
    assert list(a) != list(c)


@pytest.mark.parametrize("n,bs", [(37, 4), (8, 2), (5, 8), (100, 3)])
def test_every_batch_is_one_group_and_covers_the_dataset(n, bs):
    r = ratios(n, seed=n)
    groups = aspect_groups(r)
    s = GroupedBatchSampler(r, bs)
    batches = list(s)
    assert len(batches) == len(s)
    for b in batches:
        assert len(b) == bs
        assert len({int(groups[i]) for i in b}) == 1
    assert set(itertools.chain(*batches)) == set(range(n))


def test_unshuffled_order_and_drop_last():
    r = [0.5] * 6 + [2.0] * 3
    s = GroupedBatchSampler(r, 2, shuffle=False)
    assert list(s) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 6]]
    d = GroupedBatchSampler(r, 2, shuffle=False, drop_last=True)
    assert list(d) == [[0, 1], [2, 3], [4, 5], [6, 7]] and len(d) == 4


@pytest.mark.parametrize("n,bs,world", [(48, 4, 3), (50, 4, 3), (7, 2, 4), (23, 1, 2)])
def test_distributed_shards(n, bs, world):
    r = ratios(n, seed=1)
    shards = []
    for rank in range(world):
        s = GroupedBatchSampler(r, bs, seed=9, num_replicas=world, rank=rank)
        s.set_epoch(2)
        shards.append(list(s))
        assert len(shards[-1]) == len(s)
    assert len({len(b) for b in shards}) == 1  # equal batch counts per rank
    flat = [list(itertools.chain(*b)) for b in shards]
    assert set(itertools.chain(*flat)) == set(range(n))
    groups = aspect_groups(r)
    exact = all(np.sum(groups == g) % (bs * world) == 0 for g in (0, 1))
    if exact:  # no padding needed: the ranks' shares are disjoint and cover the epoch once
        assert sum(len(f) for f in flat) == n
        for a, b in itertools.combinations(flat, 2):
            assert not set(a) & set(b)


def test_resume_skips_to_the_tail_of_the_epoch():
    r = ratios(41)
    full = GroupedBatchSampler(r, 3, seed=1)
    full.set_epoch(5)
    expected = list(full)
    resumed = GroupedBatchSampler(r, 3, seed=1)
    resumed.set_epoch(5)
    resumed.set_start_iter(4)
    assert list(resumed) == expected[4:]
    assert list(resumed) == expected  # skipping applies to one pass only
    resumed.set_start_iter(len(resumed))
    assert list(resumed) == []
    with pytest.raises(ValueError):
        resumed.set_start_iter(len(resumed) + 1)


def test_reads_aspect_ratios_from_dataset():
    class DS:
        aspect_ratios = np.array([0.5, 2.0, 0.5, 2.0])

        def __len__(self):
            return 4

    class Info:
        def __len__(self):
            return 4

        def get_img_info(self, i):
            return {"height": 10, "width": 20} if i % 2 == 0 else {"height": 20, "width": 10}

    for ds in (DS(), Info()):
        for b in GroupedBatchSampler(ds, 2):
            assert {i % 2 for i in b} in ({0}, {1})


@pytest.mark.parametrize("n,world", [(10, 3), (2, 4), (12, 4), (0, 2)])
def test_inference_sampler_contiguous_slices(n, world):
    parts = [list(InferenceSampler(n, world, r)) for r in range(world)]
    assert list(itertools.chain(*parts)) == list(range(n))  # in order, no duplicates, nothing missing
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [len(InferenceSampler(n, world, r)) for r in range(world)] == list(map(len, parts))


@pytest.mark.parametrize("n,bs,world", [(37, 2, 2), (50, 3, 4), (8, 2, 2), (23, 1, 3)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_global_batches_depend_only_on_the_global_batch_size(n, bs, world, drop_last):
    """world processes x batch bs see, step by step, the batches of 1 process x batch bs * world."""
    r = ratios(n, seed=2)
    one = GroupedBatchSampler(r, bs * world, seed=4, drop_last=drop_last)
    ranks = [GroupedBatchSampler(r, bs, seed=4, drop_last=drop_last, num_replicas=world, rank=k) for k in range(world)]
    for s in (one, *ranks):
        s.set_epoch(3)
    expected = list(one)
    per_rank = [list(s) for s in ranks]
    assert expected and all(len(p) == len(expected) == len(s) for p, s in zip(per_rank, ranks))
    groups = aspect_groups(r)
    for step, batch in enumerate(expected):
        assert [i for p in per_rank for i in p[step]] == batch  # rank k holds slice k of the global batch
        assert len({int(groups[i]) for i in batch}) == 1  # the whole global batch is one aspect group
    assert np.array_equal(ranks[0].global_batches(3), one.global_batches(3))
    for s in ranks:  # resume mid-epoch on every rank
        s.set_start_iter(1)
    assert [list(s) for s in ranks] == [p[1:] for p in per_rank]


def test_with_epoch_yields_index_epoch_pairs():
    r = ratios(10)
    tagged, plain = GroupedBatchSampler(r, 2, seed=1, with_epoch=True), GroupedBatchSampler(r, 2, seed=1)
    tagged.set_epoch(4)
    plain.set_epoch(4)
    assert list(tagged) == [[(i, 4) for i in b] for b in plain]
    tagged.set_start_iter(2)
    assert list(tagged) == [[(i, 4) for i in b] for b in plain][2:]
