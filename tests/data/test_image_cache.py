"""ImageCache and the datasets' cache option: hits, a changed file read again, the disk folder, the memory check."""

from __future__ import annotations

import os
import pickle

import cv2
import numpy as np
import pytest

import detkit.data.image_cache as image_cache
from detkit.data.datasets.coco import CocoDataset
from detkit.data.datasets.image_folder import ImageFolderDataset
from detkit.data.image_cache import ImageCache
from detkit.data.image_io import ImageReadError, read_image


def _images(folder, n=3, seed=0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"im{i}.png"
        assert cv2.imwrite(str(path), rng.integers(0, 256, (12 + i, 16, 3), dtype=np.uint8))
        paths.append(str(path))
    return paths


def _rewrite(path: str, value: int) -> None:
    """Change the file's pixels (and its modification time, even within the file system's time resolution)."""
    before = os.stat(path).st_mtime_ns
    assert cv2.imwrite(path, np.full((12, 16, 3), value, np.uint8))
    os.utime(path, ns=(before + 10**9, before + 10**9))


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_hits_and_a_changed_file_read_again(tmp_path, mode):
    paths = _images(tmp_path / "img")
    cache = ImageCache(mode, cache_dir=tmp_path / "cache")
    cache.fill(paths)
    assert (cache.hits, cache.misses) == (0, 3)
    for p in paths:
        np.testing.assert_array_equal(cache.read(p), read_image(p))
    assert (cache.hits, cache.misses) == (3, 3)
    _rewrite(paths[0], 7)
    assert (cache.read(paths[0]) == 7).all() and cache.misses == 4
    assert (cache.read(paths[0]) == 7).all() and cache.hits == 4


def test_ram_cache_gives_copies(tmp_path):
    path = _images(tmp_path / "img", n=1)[0]
    cache = ImageCache("ram")
    first = cache.read(path)
    first[:] = 0  # a pipeline changing the image in place
    np.testing.assert_array_equal(cache.read(path), read_image(path))
    assert cache.nbytes == first.nbytes


def test_disk_cache_folder_holds_one_npy_per_image(tmp_path):
    paths = _images(tmp_path / "img")
    folder = tmp_path / "cache"
    ImageCache("disk", cache_dir=folder).fill(paths)
    files = sorted(folder.iterdir())
    assert len(files) == 3 and all(f.suffix == ".npy" for f in files)
    stored = {np.load(f).tobytes() for f in files}
    assert stored == {read_image(p).tobytes() for p in paths}
    _rewrite(paths[1], 9)
    again = ImageCache("disk", cache_dir=folder)  # a later run: entries of unchanged files are hits
    again.fill(paths)
    assert (again.hits, again.misses) == (2, 1)
    files = sorted(folder.iterdir())
    assert len(files) == 3  # the changed image's old entry is gone
    key = image_cache._key(paths[1])
    assert again.disk_path(key) in files and (np.load(again.disk_path(key)) == 9).all()
    again.disk_path(image_cache._key(paths[2])).write_bytes(b"cut short")
    np.testing.assert_array_equal(again.read(paths[2]), read_image(paths[2]))  # a broken entry is decoded again


def test_ram_cache_too_large_is_switched_off(tmp_path, monkeypatch):
    paths = _images(tmp_path / "img")
    monkeypatch.setattr(image_cache, "available_memory", lambda: 1000)
    cache = ImageCache("ram", owner="my.json")
    with pytest.warns(
        UserWarning, match=r"my\.json: the decoded images would take .* GiB, more than 50% of .*use cache: disk"
    ):
        cache.fill(paths)
    assert cache.mode is None and cache.nbytes == 0
    np.testing.assert_array_equal(cache.read(paths[0]), read_image(paths[0]))


def test_unreadable_files_are_not_cached_and_bad_modes_refused(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no image")
    cache = ImageCache("ram")
    cache.fill([str(bad)])
    with pytest.raises(ImageReadError, match="bad.png"):
        cache.read(bad)
    with pytest.raises(ValueError, match=r"cache must be 'ram' .*'disk' .*or false, got True"):
        ImageCache(True)
    copy = pickle.loads(pickle.dumps(cache))  # DataLoader workers started by spawn
    assert copy.mode == "ram"


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_coco_dataset_cached_samples_equal(coco_files, tmp_path, mode):
    plain = CocoDataset(coco_files.ann_file, coco_files.img_dir)
    cached = CocoDataset(coco_files.ann_file, coco_files.img_dir, cache=mode, cache_dir=str(tmp_path / "c"))
    assert cached.image_cache.misses == 3
    for k in range(len(plain)):
        np.testing.assert_array_equal(cached[k]["image"], plain[k]["image"])
    assert cached.image_cache.hits == 3


def test_image_folder_dataset_cache(tmp_path):
    for name in ("cat", "dog"):
        _images(tmp_path / "cls" / name, n=2)
    ds = ImageFolderDataset(img_dir=str(tmp_path / "cls"), cache="ram")
    assert ds.image_cache.misses == 4
    np.testing.assert_array_equal(ds[3]["image"], read_image(ds.files[3]))
    assert ds.image_cache.hits == 1
