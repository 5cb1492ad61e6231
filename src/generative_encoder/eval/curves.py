"""Convergence curves (the journal's Figure 9): the error of the latent search's iterate to the
clean image against the iteration, for GE and CSGM.

The engine keeps G(z) of the chosen restart every k steps (``SolveConfig.snapshot_every``); the
error to the clean image is computed from those snapshots *after* solving, for the plot only, so
no method ever sees the clean image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ConfigError
from ..io.files import atomic_path
from ..solve import SearchResult
from .metrics import mse


@dataclass
class Curve:
    """steps (S,): iterations of the snapshots; mse (S, B): each image's MSE to its clean image
    at each of them."""

    steps: list[int]
    mse: Tensor

    def mean(self) -> Tensor:
        """(S,) mean MSE over the images."""
        return self.mse.double().mean(1)

    def log10_mean(self) -> Tensor:
        """(S,) log10 of the mean MSE, the quantity of the journal's Figure 9."""
        return self.mean().clamp_min(1e-12).log10()


def curve_from_result(result: SearchResult, x: Tensor) -> Curve:
    """The per-image MSE to the clean images x (B, C, H, W) at each snapshot of a search run with
    ``snapshot_every > 0``."""
    if result.snapshots is None:
        raise ConfigError("the search kept no snapshots: solve with snapshot_every > 0")
    snaps = result.snapshots.detach()  # (S, B, C, H, W)
    if snaps.shape[1:] != x.shape:
        raise ConfigError(
            f"snapshots of {tuple(snaps.shape[1:])} do not match the clean images {tuple(x.shape)}"
        )
    x = x.to(snaps.device, snaps.dtype)
    errors = torch.stack([mse(s.clamp(0, 1), x) for s in snaps]).cpu()  # (S, B)
    return Curve(steps=list(result.snapshot_steps), mse=errors)


def plot_convergence(
    curves: dict[str, dict[str, Curve]],
    path: str | Path,
    title: str = "log10 of mean MSE against iteration",
) -> None:
    """One panel per task (the keys of ``curves``), one line per method; written as a PNG."""
    if not curves:
        raise ConfigError("plot_convergence needs at least one task's curves")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(curves), 3)
    rows = math.ceil(len(curves) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, (task, by_method) in zip(axes.flat, curves.items()):
        for method, curve in by_method.items():
            ax.plot(curve.steps, curve.log10_mean().numpy(), label=method)
        ax.set_title(task)
        ax.set_xlabel("iteration")
        ax.set_ylabel("log10 mean MSE")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Save a matplotlib figure as a PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"figures are written as .png, got {str(path)!r}")
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
