import io
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from generative_encoder.errors import ConfigError, DataError
from generative_encoder.io.images import (
    list_images,
    read_image,
    resize_image,
    save_grid,
    write_image,
)


def rgb_pixels(h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def save(path, image, **kwargs):
    image.save(path, **kwargs)
    return path


def encoded(image, format):
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def test_read_rgb_png_is_exact(tmp_path):
    pixels = rgb_pixels()
    x = read_image(save(tmp_path / "a.png", Image.fromarray(pixels)))
    assert x.dtype == torch.float32 and x.shape == (3, 6, 5)
    torch.testing.assert_close(x, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)


def test_read_16bit_scales_by_65535(tmp_path):
    pixels = np.array([[0, 1000], [32768, 65535]], dtype=np.uint16)
    x = read_image(save(tmp_path / "deep.png", Image.fromarray(pixels)))
    assert x.shape == (1, 2, 2)
    assert x[0, 1, 1] == 1.0 and x[0, 0, 0] == 0.0
    torch.testing.assert_close(x[0], torch.from_numpy(pixels.astype(np.float32) / 65535))


def test_read_palette_gives_rgb(tmp_path):
    image = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8), mode="P")
    image.putpalette([255, 0, 0, 0, 128, 255])
    x = read_image(save(tmp_path / "pal.png", image))
    assert x.shape == (3, 2, 2)
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(x[:, 0, 1], torch.tensor([0.0, 128 / 255, 1.0]))


def test_read_rgba_drops_alpha(tmp_path):
    pixels = np.zeros((3, 3, 4), dtype=np.uint8)
    pixels[...] = (200, 100, 50, 0)  # fully transparent: the colour is kept, not composited
    x = read_image(save(tmp_path / "rgba.png", Image.fromarray(pixels, mode="RGBA")))
    expected = torch.tensor([200, 100, 50]).float().div(255)[:, None, None].expand(3, 3, 3)
    torch.testing.assert_close(x, expected)


def test_read_gray_with_alpha_gives_one_channel(tmp_path):
    pixels = np.stack([np.full((2, 2), 77, np.uint8), np.zeros((2, 2), np.uint8)], axis=-1)
    x = read_image(save(tmp_path / "la.png", Image.fromarray(pixels, mode="LA")))
    torch.testing.assert_close(x, torch.full((1, 2, 2), 77 / 255))


def test_read_channel_conversions(tmp_path):
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    x = read_image(save(tmp_path / "g.png", Image.fromarray(gray)), channels=3)
    torch.testing.assert_close(x, torch.from_numpy(gray).float().div(255).expand(3, 2, 3))
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    y = read_image(save(tmp_path / "red.png", Image.fromarray(red)), channels=1)
    torch.testing.assert_close(y, torch.full((1, 2, 2), 76 / 255))  # ITU-R 601: 0.299 * 255


def test_read_bad_channels(tmp_path):
    path = save(tmp_path / "a.png", Image.fromarray(rgb_pixels()))
    with pytest.raises(ConfigError, match="channels must be 1, 3 or None, got 2"):
        read_image(path, channels=2)


def test_read_missing_and_non_image_files(tmp_path):
    with pytest.raises(DataError, match="cannot read image .*missing.png"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match="cannot read image .*notes.png"):
        read_image(tmp_path / "notes.png")


def test_read_truncated_jpeg_fails(tmp_path):
    data = encoded(Image.fromarray(rgb_pixels(64, 64)), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot read image .*cut.jpg"):
        read_image(path)


SEEDS = [
    encoded(Image.fromarray(rgb_pixels(8, 8)), format)
    for format in ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")
]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data", "ignore:Truncated File Read")
@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 400), tail=st.binary(max_size=64))
def test_read_damaged_bytes_gives_image_or_data_error(tmp_path, seed, cut, tail):
    path = tmp_path / "fuzz.img"
    path.write_bytes(seed[:cut] + tail)
    try:
        x = read_image(path)
    except DataError:
        return
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_resize_center_crops_then_resizes():
    x = torch.rand(1, 4, 8)
    torch.testing.assert_close(resize_image(x, 4), x[:, :, 2:6])  # no resampling needed
    constant = torch.full((2, 3, 10, 20), 0.25)
    torch.testing.assert_close(resize_image(constant, 5), torch.full((2, 3, 5, 5), 0.25))
    batch = torch.rand(2, 3, 9, 7)
    torch.testing.assert_close(resize_image(batch, 4)[1], resize_image(batch[1], 4))
    assert resize_image(batch * 3, 4).max() <= 1


def test_resize_rejects_bad_input():
    with pytest.raises(DataError, match=r"got shape \(4, 4\)"):
        resize_image(torch.rand(4, 4), 2)
    with pytest.raises(ConfigError, match="size must be >= 1, got 0"):
        resize_image(torch.rand(1, 4, 4), 0)


@pytest.mark.parametrize("channels", [1, 3])
def test_write_read_round_trip(tmp_path, channels):
    x = torch.rand(channels, 7, 9)
    path = tmp_path / "new" / "folder" / "out.png"
    write_image(path, x)
    assert (read_image(path) - x).abs().max() <= 0.5 / 255 + 1e-6
    assert os.listdir(path.parent) == ["out.png"]  # no temporary file left behind


def test_write_clamps_and_rejects_nan(tmp_path):
    write_image(tmp_path / "c.png", torch.tensor([[[-1.0, 2.0]]]))
    torch.testing.assert_close(read_image(tmp_path / "c.png"), torch.tensor([[[0.0, 1.0]]]))
    with pytest.raises(DataError, match="NaN"):
        write_image(tmp_path / "nan.png", torch.full((1, 2, 2), float("nan")))
    assert not (tmp_path / "nan.png").exists()
    with pytest.raises(ConfigError, match=r"must be a \.png file, got .*out\.jpg"):
        write_image(tmp_path / "out.jpg", torch.rand(3, 2, 2))


def test_save_grid_layout_and_values(tmp_path):
    rgb = torch.rand(3, 3, 8, 8)
    gray = torch.rand(3, 1, 8, 8)
    big = torch.rand(2, 3, 16, 16)
    path = tmp_path / "grid.png"
    save_grid(path, [rgb, gray, big], pad=2)
    grid = read_image(path)
    assert grid.shape == (3, 2 + 3 * 10, 2 + 3 * 10)

    def cell(row, col):
        return grid[:, 2 + row * 10 : 10 + row * 10, 2 + col * 10 : 10 + col * 10]

    tolerance = dict(atol=0.5 / 255 + 1e-6, rtol=0)
    torch.testing.assert_close(cell(0, 2), rgb[2], **tolerance)
    torch.testing.assert_close(cell(1, 0), gray[0].expand(3, 8, 8), **tolerance)
    torch.testing.assert_close(cell(2, 1), big[1, :, ::2, ::2], **tolerance)  # nearest
    torch.testing.assert_close(cell(2, 2), torch.ones(3, 8, 8))  # missing cell: background


def test_save_grid_with_labels(tmp_path):
    rows = [torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)]
    save_grid(tmp_path / "labelled.png", rows, row_labels=["clean", "restored"], pad=2)
    with Image.open(tmp_path / "labelled.png") as image:
        width, height = image.size
    assert height == 2 + 2 * 10 and width > 2 + 2 * 10
    with pytest.raises(ConfigError, match=r"one label per row \(2\), got 1"):
        save_grid(tmp_path / "bad.png", rows, row_labels=["clean"])


def test_list_images(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ["b.png", "A.JPG", "sub/c.tiff", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    top_level = [tmp_path / "A.JPG", tmp_path / "b.png"]
    assert list_images(tmp_path) == top_level + [tmp_path / "sub" / "c.tiff"]
    assert list_images(tmp_path, recursive=False) == top_level
    with pytest.raises(DataError, match="image folder not found: .*nowhere"):
        list_images(tmp_path / "nowhere")


def test_the_exif_orientation_is_applied(tmp_path):
    """A JPEG stored sideways with orientation 6 (rotate 90 degrees clockwise to show) is read
    as it is shown: the bright left column of the stored image becomes the top row."""
    stored = np.zeros((16, 24), np.uint8)
    stored[:, :4] = 255  # bright left columns of the stored pixels
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    x = read_image(tmp_path / "sideways.jpg")
    assert x.shape == (1, 24, 16)  # rotated: 24 rows of 16
    assert x[0, :4].mean() > 0.9 and x[0, 8:].mean() < 0.1
