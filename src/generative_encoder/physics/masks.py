"""Inpainting masks: (H, W) float32 tensors, 1 = kept pixel, 0 = missing pixel.

Random masks draw only from the ``torch.Generator`` they are given, so a seed fixes the mask.

>>> block_mask(4, 4, 2)
tensor([[1., 1., 1., 1.],
        [1., 0., 0., 1.],
        [1., 0., 0., 1.],
        [1., 1., 1., 1.]])
"""

from __future__ import annotations

import math
import string

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..errors import ConfigError

BLOCK_FRACTION = 30 / 64  # default block side / image side: 30 px at 64x64, 13 px at 28x28
FREEFORM_MAX_MISSING = 0.5
_CHARACTERS = string.ascii_letters + string.digits


def default_block(h: int, w: int) -> int:
    """Default side of the centred block: ``round(30/64 * min(h, w))``."""
    return round(BLOCK_FRACTION * min(h, w))


def block_mask(h: int, w: int, block: int) -> torch.Tensor:
    """(H, W) mask with a centred ``block`` x ``block`` square of zeros.

    The square's top-left pixel is ((h - block) // 2, (w - block) // 2).
    """
    if not 1 <= block <= min(h, w):
        raise ConfigError(
            f"block must be between 1 and {min(h, w)} for a {h}x{w} image, got {block}"
        )
    mask = torch.ones(h, w)
    top, left = (h - block) // 2, (w - block) // 2
    mask[top : top + block, left : left + block] = 0
    return mask


def random_mask(h: int, w: int, missing: float, generator: torch.Generator) -> torch.Tensor:
    """(H, W) mask; each pixel is missing independently with probability ``missing`` in (0, 1)."""
    _check_missing(missing, 1.0)
    return (torch.rand(h, w, generator=generator) >= missing).float()


def freeform_mask(h: int, w: int, generator: torch.Generator, missing: float = 0.2) -> torch.Tensor:
    """(H, W) hand-drawn-looking mask: 1 to 3 random characters, then random brush strokes until
    at least ``missing`` (in (0, 0.5]) of the pixels are covered (a stroke segment may overshoot
    by a few percent)."""
    _check_missing(missing, FREEFORM_MAX_MISSING)
    side = min(h, w)
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(8, side // 4))
    for _ in range(_randint(generator, 1, 3)):
        char = _CHARACTERS[_randint(generator, 0, len(_CHARACTERS) - 1)]
        draw.text((_randint(generator, 0, w - 1), _randint(generator, 0, h - 1)), char, 255, font)

    def covered() -> float:
        return float(np.count_nonzero(np.asarray(canvas))) / (h * w)

    while covered() < missing:  # one brush stroke: a few joined segments of one width
        x, y = _randint(generator, 0, w - 1), _randint(generator, 0, h - 1)
        width = _randint(generator, max(1, side // 32), max(2, side // 10))
        for _ in range(_randint(generator, 2, 5)):
            angle = 2 * math.pi * _uniform(generator)
            length = side * (1 / 8 + _uniform(generator) / 4)
            x2 = min(max(x + length * math.cos(angle), 0), w - 1)
            y2 = min(max(y + length * math.sin(angle), 0), h - 1)
            draw.line([(x, y), (x2, y2)], fill=255, width=width)
            r = width / 2
            draw.ellipse([x2 - r, y2 - r, x2 + r, y2 + r], fill=255)  # round joint
            x, y = x2, y2
            if covered() >= missing:
                break
    return torch.from_numpy(np.asarray(canvas) == 0).float()


def check_mask(mask: torch.Tensor) -> None:
    """Raise ConfigError if ``mask`` keeps every pixel or none."""
    kept, total = int(mask.sum()), mask.numel()
    if kept in (0, total):
        raise ConfigError(f"mask keeps {kept} of {total} pixels; it must keep some and remove some")


def _check_missing(missing: float, high: float) -> None:
    if not 0 < missing < 1 or missing > high:
        bound = "< 1" if high == 1.0 else f"<= {high}"
        raise ConfigError(f"missing must be > 0 and {bound}, got {missing}")


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high], both included."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand(1, generator=generator))
