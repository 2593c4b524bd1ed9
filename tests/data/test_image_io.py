"""read_image (EXIF, gray, RGBA, 16-bit, corrupt files) and safe_join."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from detkit.data.image_io import ImageReadError, UnsafePathError, read_image, safe_join


def _asym_rgb(h: int = 12, w: int = 20) -> np.ndarray:
    """An image with a distinct colour in each quadrant, so every rotation/flip is visible."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2 :] = (0, 255, 0)
    a[h // 2 :, : w // 2] = (0, 0, 255)
    a[h // 2 :, w // 2 :] = (255, 255, 0)
    return a


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png_matches_pil(tmp_path, orientation):
    rgb = _asym_rgb()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(rgb).save(path, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    got = read_image(path)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    if orientation in (5, 6, 7, 8):
        assert got.shape[:2] == (20, 12)


def test_exif_orientation_jpeg(tmp_path):
    rgb = _asym_rgb(40, 64)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "o6.jpg"
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), quality=100)
    got = read_image(path)
    assert got.shape == (64, 40, 3)
    # the red top-left quadrant is displayed top-right after a clockwise turn
    assert np.abs(got[5, 35].astype(int) - (255, 0, 0)).max() < 40
    assert np.abs(got[5, 5].astype(int) - (0, 0, 255)).max() < 40


def test_rgb_channel_order(tmp_path):
    rgb = _asym_rgb()
    Image.fromarray(rgb).save(tmp_path / "x.png")
    np.testing.assert_array_equal(read_image(tmp_path / "x.png"), rgb)


def test_grayscale_becomes_three_channels(tmp_path):
    gray = np.arange(100, dtype=np.uint8).reshape(10, 10)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    got = read_image(tmp_path / "g.png")
    assert got.shape == (10, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], gray)


def test_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 7
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    got = read_image(tmp_path / "a.png")
    assert got.shape == (8, 8, 3)
    np.testing.assert_array_equal(got[0, 0], (200, 100, 50))


@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_scaled_to_8bit(tmp_path, channels):
    g16 = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    arr = g16 if channels == 1 else np.stack([g16, g16 // 2, g16 // 4], -1)
    cv2.imwrite(str(tmp_path / "d.png"), arr)
    got = read_image(tmp_path / "d.png")
    assert got.dtype == np.uint8 and got.shape == (8, 8, 3)
    expect = (g16 >> 8).astype(np.uint8)
    np.testing.assert_array_equal(got[..., 2], expect)
    if channels == 1:
        np.testing.assert_array_equal(got[..., 0], expect)
    else:  # cv2 wrote BGR, so the first written channel is blue (last in RGB)
        np.testing.assert_array_equal(got[..., 0], ((g16 // 4) >> 8).astype(np.uint8))


def test_unicode_path(tmp_path):
    d = tmp_path / "bilder_ä_图像"
    d.mkdir()
    Image.fromarray(_asym_rgb()).save(d / "ß.png")
    assert read_image(d / "ß.png").shape == (12, 20, 3)


@pytest.mark.parametrize("content", [b"this is not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 30, b""])
def test_corrupt_image_raises_naming_file(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match="broken.png") as e:
        read_image(path)
    assert isinstance(e.value, OSError) and isinstance(e.value, ValueError)


def test_truncated_jpeg_raises(tmp_path):
    Image.fromarray(_asym_rgb(64, 64)).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[:20])  # header only
    with pytest.raises(ImageReadError, match="t.jpg"):
        read_image(tmp_path / "t.jpg")


def test_missing_file_raises_naming_file(tmp_path):
    with pytest.raises(ImageReadError, match="nothere.jpg"):
        read_image(tmp_path / "nothere.jpg")


def test_safe_join_accepts_relative_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    assert safe_join(tmp_path, "sub/x.png") == os.path.join(os.path.realpath(tmp_path), "sub", "x.png")
    assert safe_join(tmp_path, "sub/../y.png") == os.path.join(os.path.realpath(tmp_path), "y.png")


@pytest.mark.parametrize(
    "name,why",
    [
        ("../secret.png", "outside"),
        ("sub/../../x.png", "outside"),
        ("/etc/passwd", "absolute"),
        ("", "empty"),
        ("\\\\server\\share\\x.png", "absolute"),
        ("C:\\x.png", "absolute"),
        ("..\\secret.png", "outside"),
        ("sub2\\..\\..\\x.png", "outside"),
    ],
)
def test_safe_join_refuses_escaping_paths(tmp_path, name, why):
    (tmp_path / "sub").mkdir()
    with pytest.raises(UnsafePathError, match=why) as e:
        safe_join(tmp_path / "sub", name)
    assert repr(name) in str(e.value) and "relative to img_dir" in str(e.value)


def test_safe_join_reads_backslashes_as_separators(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    root = os.path.realpath(tmp_path)
    assert safe_join(tmp_path, "a\\b\\x.png") == os.path.join(root, "a", "b", "x.png")
    assert safe_join(tmp_path, ".\\c\\..\\x.png") == os.path.join(root, "x.png")


def test_safe_join_resolves_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    img_dir = tmp_path / "img"
    img_dir.mkdir()
    os.symlink(outside, img_dir / "link")
    with pytest.raises(UnsafePathError, match="outside img_dir"):
        safe_join(img_dir, "link/x.png")
    # a linked img_dir itself is fine
    os.symlink(img_dir, tmp_path / "img_link")
    assert safe_join(tmp_path / "img_link", "x.png") == os.path.join(os.path.realpath(img_dir), "x.png")
