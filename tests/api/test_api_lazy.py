"""detkit.predict reads files lazily: every input is checked before the first forward pass, but a file is decoded
only with its batch (tiled: alone), so a long list of large images never sits in memory at once; the results and
their order are those of the decoded arrays; a file that cannot be decoded stops the call naming it."""

from __future__ import annotations

import weakref

import cv2
import numpy as np
import pytest

import detkit
import detkit.data.image_io as image_io
from detkit.data.image_io import ImageReadError
from detkit.inference.inputs import LazyImages

SAME_KEYS = ("boxes", "scores", "labels")


def write_images(folder, n: int) -> list:
    """``n`` different RGB images written as PNG files: their paths."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 255, (40 + 4 * i, 56, 3), dtype=np.uint8), (5, 5), 0)
        paths.append(folder / f"{i:02d}.png")
        cv2.imwrite(str(paths[-1]), img)
    return paths


class DecodeSpy:
    """Wraps ``image_io.read_image``: counts the files read and the most decoded images alive at once."""

    def __init__(self, monkeypatch):
        self.read = self.alive = self.most_alive = 0
        self.real = image_io.read_image
        monkeypatch.setattr(image_io, "read_image", self)

    def __call__(self, path):
        image = self.real(path)
        self.read += 1
        self.alive += 1
        self.most_alive = max(self.most_alive, self.alive)
        weakref.finalize(image, self._released)
        return image

    def _released(self) -> None:
        self.alive -= 1


def test_files_are_decoded_one_batch_at_a_time(model, tmp_path, monkeypatch, capsys):
    paths = write_images(tmp_path, 7)
    arrays = [image_io.read_image(p) for p in paths]
    want = detkit.predict(model, arrays, score_thr=0.0, batch_size=3)
    spy = DecodeSpy(monkeypatch)
    got = detkit.predict(model, paths, score_thr=0.0, batch_size=3, progress=True)
    assert spy.read == 7 and spy.most_alive <= 3  # eager decoding held all 7
    assert "7/7" in capsys.readouterr().err  # the bar counts images, as before
    assert len(got) == 7
    for g, w in zip(got, want):  # the same results, in the same order
        assert all(np.array_equal(g[k].numpy(), w[k].numpy()) for k in SAME_KEYS)


def test_tiled_inference_decodes_one_image_at_a_time(model, tmp_path, monkeypatch):
    paths = write_images(tmp_path, 3)
    want = detkit.predict(model, [image_io.read_image(p) for p in paths], score_thr=0.0, tile=(32, 32))
    spy = DecodeSpy(monkeypatch)
    got = detkit.predict(model, paths, score_thr=0.0, tile=(32, 32), batch_size=4)
    assert spy.read == 3 and spy.most_alive == 1
    for g, w in zip(got, want):
        assert all(np.array_equal(g[k].numpy(), w[k].numpy()) for k in SAME_KEYS)


def empty_file(folder):
    (folder / "empty.png").write_bytes(b"")
    return folder / "empty.png"


@pytest.mark.parametrize(
    "make_last, error, match",
    [
        (lambda d: d / "nope.png", ImageReadError, r"cannot read image file .*nope\.png: No such file"),
        (empty_file, ImageReadError, r"cannot decode image file .*empty\.png: the file is empty"),
        (lambda d: np.zeros((8, 8, 2), np.uint8), ValueError, r"must be \[H,W\], \[H,W,3\] or \[H,W,4\]"),
        (lambda d: np.full((8, 8, 3), -1.0), ValueError, r"float64 numpy image must hold values in 0..1 or 0..255"),
        (lambda d: np.zeros((8, 8, 3), bool), ValueError, r"numpy image must be uint8, uint16 or float, got bool"),
        (lambda d: 42, TypeError, r"predict: unsupported input type int"),
    ],
)
def test_every_input_is_checked_before_any_file_is_decoded(model, tmp_path, monkeypatch, make_last, error, match):
    paths = write_images(tmp_path, 3)
    spy = DecodeSpy(monkeypatch)
    with pytest.raises(error, match=match):
        detkit.predict(model, [*paths, make_last(tmp_path)], batch_size=2)
    assert spy.read == 0


def test_a_file_that_cannot_be_decoded_names_itself_and_its_place(model, tmp_path, monkeypatch):
    paths = write_images(tmp_path, 4)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")  # exists and is not empty: found when its batch is read
    spy = DecodeSpy(monkeypatch)
    inputs = [*paths[:2], corrupt, *paths[2:]]
    with pytest.raises(ImageReadError, match=r"^predict: cannot decode image file .*corrupt\.jpg: .*input 3 of 5"):
        detkit.predict(model, inputs, batch_size=1)
    assert spy.read == 2  # the images before it were run; none after it was read
    assert spy.alive == 0


def test_lazy_images_index_and_slice_as_a_list(tmp_path):
    paths = write_images(tmp_path, 3)
    bgr = cv2.imread(str(paths[1]))
    images = LazyImages([paths[0], bgr, paths[2]], channel_order="bgr")
    assert len(images) == 3
    assert np.array_equal(images[1], bgr[:, :, ::-1]) and np.array_equal(images[-1], image_io.read_image(paths[2]))
    assert [x.shape for x in images[1:]] == [bgr.shape, image_io.read_image(paths[2]).shape]
    assert len(list(images)) == 3  # iteration stops at the end
    with pytest.raises(IndexError):
        images[3]
