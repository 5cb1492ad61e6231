"""Per-image quality metrics and their summaries, on deepinv's metric implementations.

Images are ``(B, C, H, W)`` tensors in [0, 1]; every metric returns one value per image, shape
``(B,)``, so that a benchmark can report a mean and a spread over a test set.

>>> import torch
>>> x = torch.full((2, 1, 28, 28), 0.5)
>>> psnr(x + 0.1, x)  # MSE 0.01 -> 20 dB
tensor([20.0000, 20.0000])
>>> summary = summarize(psnr(x + 0.1, x))
>>> format_mean_std(summary["mean"], summary["std"])
'20.00 ± 0.00'
"""

from __future__ import annotations

import math

import scipy.stats
from deepinv.loss.metric import MSE, PSNR, SSIM
from torch import Tensor

from ..errors import ConfigError

_MSE = MSE()
_SSIM = SSIM()  # torchmetrics SSIM: 11 x 11 Gaussian window (sigma 1.5), data range 1


def _check_pair(x_hat: Tensor, x: Tensor) -> None:
    if x_hat.shape != x.shape or x.ndim != 4:
        raise ConfigError(
            f"metrics need two (B, C, H, W) tensors of one shape, "
            f"got {tuple(x_hat.shape)} and {tuple(x.shape)}"
        )


def mse(x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean squared error per image (B,) of ``x_hat`` against ``x``, both (B, C, H, W)."""
    _check_pair(x_hat, x)
    return _MSE(x_hat, x)


def psnr(x_hat: Tensor, x: Tensor, max_pixel: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image (B,), ``10 log10(max_pixel^2 / MSE)``.

    deepinv adds 1e-8 to ``MSE / max_pixel^2``, so identical images score 80 dB, not infinity.
    """
    _check_pair(x_hat, x)
    if not max_pixel > 0:
        raise ConfigError(f"max_pixel must be > 0, got {max_pixel}")
    return PSNR(max_pixel=max_pixel)(x_hat, x)


def ssim(x_hat: Tensor, x: Tensor) -> Tensor:
    """Structural similarity per image (B,), at most 1 (identical), for images in [0, 1]."""
    _check_pair(x_hat, x)
    return _SSIM(x_hat, x)


def measurement_residual(y: Tensor, y_hat: Tensor) -> Tensor:
    """Mean squared residual ``||y - y_hat||^2 / numel`` per item (B,) in measurement space.

    ``y`` and ``y_hat`` share any shape ``(B, ...)`` (images, or ``(B, m)`` for compressed sensing).
    """
    if y.shape != y_hat.shape or y.ndim < 2:
        raise ConfigError(
            f"measurement_residual needs two (B, ...) tensors of one shape, "
            f"got {tuple(y.shape)} and {tuple(y_hat.shape)}"
        )
    return (y - y_hat).abs().pow(2).flatten(1).mean(1)


def score(x_hat: Tensor, x: Tensor) -> dict[str, Tensor]:
    """``{"mse", "psnr", "ssim"}``, each per image (B,)."""
    return {"mse": mse(x_hat, x), "psnr": psnr(x_hat, x), "ssim": ssim(x_hat, x)}


def summarize(values: Tensor) -> dict[str, float | int]:
    """Mean, population standard deviation (ddof 0) and count of per-image values (B,)."""
    if values.ndim != 1 or len(values) == 0:
        raise ConfigError(
            f"summarize needs a non-empty (B,) tensor, got shape {tuple(values.shape)}"
        )
    values = values.detach().double()
    return {
        "mean": values.mean().item(),
        "std": values.std(correction=0).item(),
        "n": len(values),
    }


def format_mean_std(mean: float, std: float, digits: int = 2) -> str:
    """``"mean ± std"`` with ``digits`` decimals, e.g. ``"27.31 ± 1.20"``."""
    if digits < 0:
        raise ConfigError(f"digits must be >= 0, got {digits}")
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def paired_difference(a: Tensor, b: Tensor, confidence: float = 0.95) -> dict[str, float | int]:
    """The mean of a - b over paired per-image values a, b (B,) (the same images, two methods),
    with its two-sided Student-t confidence interval ``[low, high]`` at ``confidence``, the t
    statistic and n. An interval that contains 0 means the difference is within the noise of
    these images."""
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ConfigError(
            f"paired_difference needs two (B,) tensors of one shape with B >= 2, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    d = a.detach().double() - b.detach().double()
    n, mean = len(d), d.mean().item()
    sem = d.std(correction=1).item() / math.sqrt(n)
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    t = mean / sem if sem > 0 else math.copysign(math.inf, mean) if mean else 0.0
    return {"mean": mean, "low": mean - half, "high": mean + half, "t": t, "n": n}
