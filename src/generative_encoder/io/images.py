"""Image file I/O: read user images as tensors, write results and comparison grids as PNG.

Images are float32 tensors in [0, 1], shaped (C, H, W) with C = 1 (gray) or 3 (RGB), or
(B, C, H, W) in batches.

>>> x = read_image("face.jpg", channels=3)  # doctest: +SKIP
>>> write_image("out/face64.png", resize_image(x, 64))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..errors import ConfigError, DataError
from .files import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
MAX_16BIT = 65535
MAX_8BIT = 255
GRID_BACKGROUND = 1.0  # white padding between grid cells
LABEL_COLOUR = (0, 0, 0)


def read_image(path: str | os.PathLike, channels: int | None = None) -> torch.Tensor:
    """Read an image file as a float32 tensor (C, H, W) in [0, 1].

    Conversions: 8-bit values are divided by 255, 16/32-bit integer gray (modes I;16, I) by 65535
    (then clamped); palette images become RGB; an alpha channel is dropped (not composited);
    ``channels=1`` turns colour into ITU-R 601 luma (Pillow's ``L``), ``channels=3`` repeats gray
    into RGB, ``None`` keeps the file's own (1 for gray, 3 for colour). An EXIF orientation tag
    (a camera's JPEG stored rotated) is applied, so the image is as it is shown.
    Missing, corrupt or truncated files raise :class:`DataError`.
    """
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1, 3 or None, got {channels!r}")
    try:
        with Image.open(path) as im:
            im.load()  # decodes now, so a truncated file fails here rather than loading half
            pixels = _pixels(ImageOps.exif_transpose(im), channels)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {str(path)!r}: {e}") from None
    x = torch.from_numpy(pixels)
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)  # (C, H, W)
    if channels == 3 and x.shape[0] == 1:
        x = x.repeat(3, 1, 1)
    return x.clamp(0, 1).contiguous()


def check_image(path: str | os.PathLike) -> None:
    """Raise :class:`DataError`, as :func:`read_image` would, when ``path`` is missing or is not
    an image Pillow knows; reads the header only (a truncated body fails later, in
    :func:`read_image`)."""
    try:
        with Image.open(path):
            pass
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {str(path)!r}: {e}") from None


def _pixels(im: Image.Image, channels: int | None) -> np.ndarray:
    """Float32 pixels (H, W) or (H, W, 3) in [0, 1] of an opened Pillow image."""
    if im.mode.startswith("I"):  # I;16, I;16B, I;16L, I;16N, I
        return np.asarray(im).astype(np.float32) / MAX_16BIT
    if im.mode == "F":
        raise ValueError("floating-point images (mode F) are not supported")
    gray = channels == 1 or Image.getmodebase(im.mode) == "L"
    return np.asarray(im.convert("L" if gray else "RGB"), dtype=np.float32) / MAX_8BIT


def resize_image(x: torch.Tensor, size: int) -> torch.Tensor:
    """Center-crop (C, H, W) or (B, C, H, W) images to a square, then resize to size x size.

    Bilinear with antialiasing (as torchvision's ``Resize``); the result is clamped to [0, 1].
    """
    if x.ndim not in (3, 4):
        raise DataError(f"expected (C, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    if size < 1:
        raise ConfigError(f"size must be >= 1, got {size!r}")
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top : top + side, left : left + side]
    if side != size:
        batch = x if x.ndim == 4 else x[None]
        batch = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True)
        x = batch if x.ndim == 4 else batch[0]
    return x.clamp(0, 1)


def write_image(path: str | os.PathLike, x: torch.Tensor) -> None:
    """Write a (C, H, W) image, C = 1 or 3, as an 8-bit PNG; values are clamped to [0, 1].

    The write is atomic (a temporary file in the same folder, then renamed) and parent folders
    are created. NaN values raise :class:`DataError`.
    """
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise DataError(f"expected an image (1 or 3, H, W), got shape {tuple(x.shape)}")
    _save_png(path, _to_pil(x))


def save_grid(
    path: str | os.PathLike,
    rows: list[torch.Tensor],
    row_labels: list[str] | None = None,
    pad: int = 2,
) -> None:
    """Save rows of images, each a batch (B, C, H, W) in [0, 1], as one PNG grid.

    Typically the rows are clean | degraded | restored.

    Gray rows are shown as RGB; rows whose H, W differ from the first row's are resized to it
    (nearest). Optional text labels go to the left of each row. Cells are separated by ``pad``
    white pixels. Atomic write, as :func:`write_image`.
    """
    if not rows:
        raise DataError("save_grid needs at least one row, got none")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ConfigError(
            f"row_labels must have one label per row ({len(rows)}), got {len(row_labels)}"
        )
    if pad < 0:
        raise ConfigError(f"pad must be >= 0, got {pad!r}")
    for row in rows:
        if row.ndim != 4 or row.shape[1] not in (1, 3):
            raise DataError(f"each row must be (B, 1 or 3, H, W), got shape {tuple(row.shape)}")
    h, w = rows[0].shape[-2:]
    font = ImageFont.load_default()
    label_width = 0
    if row_labels:
        label_width = max(int(font.getbbox(label)[2]) for label in row_labels) + 2 * pad
    cols = max(row.shape[0] for row in rows)
    canvas = torch.full(
        (3, pad + len(rows) * (h + pad), label_width + pad + cols * (w + pad)), GRID_BACKGROUND
    )
    for i, row in enumerate(rows):
        row = row.detach().cpu().float().expand(-1, 3, -1, -1)
        if row.shape[-2:] != (h, w):
            row = F.interpolate(row, size=(h, w), mode="nearest")
        top = pad + i * (h + pad)
        for j, image in enumerate(row):
            left = label_width + pad + j * (w + pad)
            canvas[:, top : top + h, left : left + w] = image
    grid = _to_pil(canvas)
    if row_labels:
        draw = ImageDraw.Draw(grid)
        for i, label in enumerate(row_labels):
            text_height = font.getbbox(label)[3]
            top = pad + i * (h + pad) + (h - text_height) // 2
            draw.text((pad, top), label, fill=LABEL_COLOUR, font=font)
    _save_png(path, grid)


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Sorted paths of the files under ``folder`` with a suffix in ``IMAGE_SUFFIXES`` (any case)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {str(folder)!r}")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _to_pil(x: torch.Tensor) -> Image.Image:
    """An 8-bit Pillow image (L or RGB) from a (1 or 3, H, W) tensor, clamped to [0, 1]."""
    x = x.detach().cpu().float()
    if torch.isnan(x).any():
        raise DataError("cannot write an image containing NaN values")
    levels = (x.clamp(0, 1) * MAX_8BIT).round().to(torch.uint8)
    pixels = levels.permute(1, 2, 0).numpy()  # (H, W, C)
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def _save_png(path: str | os.PathLike, image: Image.Image) -> None:
    """Save ``image`` as PNG at ``path`` atomically, creating parent folders."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"output image must be a .png file, got {str(path)!r}")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
