"""Differentiable augmentation for GAN training on small data sets (Zhao et al., "Differentiable
Augmentation for Data-Efficient GAN Training", NeurIPS 2020).

The discriminator sees every image, real or generated, through the same random transform, and
the generator's gradient flows through it. With a few thousand training images this keeps D from
memorising the training set, the failure that stalls sample quality on mnist5k.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError


def translation(x: Tensor, g: torch.Generator, ratio: float = 0.125) -> Tensor:
    """Shift each image (B, C, H, W) by up to ``ratio`` of its size, filling with zeros."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), generator=g).to(x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), generator=g).to(x.device)
    iy = torch.arange(h, device=x.device).view(1, h, 1) - dy  # source row of each target row
    ix = torch.arange(w, device=x.device).view(1, 1, w) - dx
    valid = ((iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)).unsqueeze(1)  # (B, 1, H, W)
    iy, ix = iy.clamp(0, h - 1).expand(b, h, w), ix.clamp(0, w - 1).expand(b, h, w)
    flat = (iy * w + ix).flatten(1).unsqueeze(1).expand(-1, x.shape[1], -1)  # (B, C, H*W)
    return x.flatten(2).gather(2, flat).view_as(x) * valid


def cutout(x: Tensor, g: torch.Generator, ratio: float = 0.5) -> Tensor:
    """Zero one random square of side ``ratio`` x size per image (B, C, H, W)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=g).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=g).to(x.device)
    y0, x0 = cy - ch // 2, cx - cw // 2  # the square may hang over the border, as in DiffAugment
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= y0) & (rows < y0 + ch) & (cols >= x0) & (cols < x0 + cw)  # (B, H, W)
    return x * (~inside).unsqueeze(1)


def brightness(x: Tensor, g: torch.Generator) -> Tensor:
    """Add one random offset in [-0.25, 0.25] per image (images stay unclamped, as D sees them)."""
    return x + (torch.rand(x.shape[0], 1, 1, 1, generator=g).to(x.device) - 0.5) * 0.5


AUGMENTS = {"translation": translation, "cutout": cutout, "brightness": brightness}


def parse_augment(spec: str) -> tuple[str, ...]:
    """ "translation,cutout" -> ("translation", "cutout"); "" -> (); unknown names are an error."""
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [n for n in names if n not in AUGMENTS]
    if unknown:
        raise ConfigError(f"unknown augmentation {unknown}; known: {', '.join(AUGMENTS)}")
    return names


def augment(x: Tensor, names: tuple[str, ...], g: torch.Generator) -> Tensor:
    """Apply the named transforms in order; identity when ``names`` is empty."""
    for name in names:
        x = AUGMENTS[name](x, g)
    return x
