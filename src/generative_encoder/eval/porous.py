"""Measures of porous media on 2D binary images, as digital-rock papers report them.

An image (B, 1, H, W) in [0, 1] is segmented at 0.5: pixels above are pore (phase 1; the Berea
data's "255 = pore"). Per image:

- porosity: the pore fraction (the first Minkowski functional, area, per pixel);
- S2(r): the two-point probability function, P(x and x + r are both pore), averaged over the
  horizontal and vertical directions, for r = 0..r_max pixels (S2(0) is the porosity);
- specific perimeter: the pore-grain interface length (Crofton estimate, 4 directions) per pixel,
  the second Minkowski functional;
- Euler density: the Euler characteristic (pore components minus holes, 8-connectivity) per
  1000 pixels, the third.
"""

from __future__ import annotations

import torch
from skimage.measure import euler_number, perimeter_crofton
from torch import Tensor

from ..errors import DataError

R_MAX = 16


def segment(x: Tensor) -> Tensor:
    """(B, H, W) bool pore maps of gray images (B, 1, H, W) in [0, 1]."""
    if x.ndim != 4 or x.shape[1] != 1:
        raise DataError(f"porous-media measures need (B, 1, H, W) images, got {tuple(x.shape)}")
    return x[:, 0] > 0.5


def porosity(x: Tensor) -> Tensor:
    """(B,) pore fraction."""
    return segment(x).double().mean((1, 2))


def two_point(x: Tensor, r_max: int = R_MAX) -> Tensor:
    """(B, r_max + 1) S2(r), r = 0..r_max, over all pixel pairs r apart along rows and columns."""
    pore = segment(x).double()
    if r_max >= min(pore.shape[1:]):
        raise DataError(f"r_max must be below the image side {min(pore.shape[1:])}, got {r_max}")
    values = [pore.mean((1, 2))]
    for r in range(1, r_max + 1):
        across = (pore[:, :, r:] * pore[:, :, :-r]).mean((1, 2))
        down = (pore[:, r:, :] * pore[:, :-r, :]).mean((1, 2))
        values.append((across + down) / 2)
    return torch.stack(values, 1)


def specific_perimeter(x: Tensor) -> Tensor:
    """(B,) interface length per pixel (Crofton, 4 directions)."""
    pore = segment(x).numpy()
    return torch.tensor([perimeter_crofton(p, directions=4) / p.size for p in pore])


def euler_density(x: Tensor) -> Tensor:
    """(B,) Euler characteristic (8-connected pore space) per 1000 pixels."""
    pore = segment(x).numpy()
    return torch.tensor([1000.0 * euler_number(p, connectivity=2) / p.size for p in pore])


def rock_measures(x: Tensor) -> dict[str, Tensor]:
    """Every per-image scalar measure: porosity, specific_perimeter, euler_density, each (B,)."""
    return {
        "porosity": porosity(x),
        "specific_perimeter": specific_perimeter(x),
        "euler_density": euler_density(x),
    }


def compare_sets(real: Tensor, fake: Tensor, r_max: int = R_MAX) -> dict:
    """Set-level agreement of two image sets: each measure's mean in both, and S2's largest
    relative difference over r = 0..r_max of the sets' mean curves (the acceptance criterion
    of digital-rock GAN papers), with the curves themselves."""
    real_measures, fake_measures = rock_measures(real), rock_measures(fake)
    out = {
        name: {"real": float(values.mean()), "generated": float(fake_measures[name].mean())}
        for name, values in real_measures.items()
    }
    s2_real = two_point(real, r_max).mean(0)
    s2_fake = two_point(fake, r_max).mean(0)
    out["s2_real"] = s2_real.tolist()
    out["s2_generated"] = s2_fake.tolist()
    out["s2_max_relative_error"] = float(((s2_fake - s2_real).abs() / s2_real).max())
    return out


def restoration_errors(x_hat: Tensor, x: Tensor, r_max: int = R_MAX) -> dict[str, Tensor]:
    """Per-image physical errors (B,) of restorations against their clean images: |porosity
    difference|, S2's mean absolute difference over r = 0..r_max, |Euler density difference|."""
    a, b = rock_measures(x_hat), rock_measures(x)
    return {
        "porosity_err": (a["porosity"] - b["porosity"]).abs(),
        "s2_err": (two_point(x_hat, r_max) - two_point(x, r_max)).abs().mean(1),
        "euler_err": (a["euler_density"] - b["euler_density"]).abs(),
    }


__all__ = [
    "R_MAX",
    "compare_sets",
    "euler_density",
    "porosity",
    "restoration_errors",
    "rock_measures",
    "segment",
    "specific_perimeter",
    "two_point",
]
