"""Pictures of the latent spaces: the latents z* that GE recovers for a set of images beside the
codes E(x), projected to 2D by PCA and coloured by class; nearest neighbours in each space;
images along the line between two recovered latents; and GE's error split into the generator's
representation error and the solver's error.

GE recovers z* from the code alone (encoder sensing: m = E(x), z* = argmin ||E(G(z)) - m||^2 +
lambda ||z||^2), never from the image; the images are used only to score and to draw.

>>> import torch
>>> p = pca(torch.tensor([[0., 0.], [1., 1.], [2., 2.], [3., 3.]]), k=1)
>>> [round(v, 4) for v in p.projection[:, 0].tolist()], round(p.explained[0].item(), 4)
([-2.1213, -0.7071, 0.7071, 2.1213], 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ConfigError
from ..io.checkpoints import ModelBundle
from ..io.images import save_grid
from ..methods import METHODS
from ..physics import make_physics
from ..solve import SearchResult
from .metrics import mse


@dataclass
class PCA:
    """projection (N, k); components (k, D), orthonormal rows; mean (D,); explained (k,): the
    fraction of the total variance along each component."""

    projection: Tensor
    components: Tensor
    mean: Tensor
    explained: Tensor


def pca(points: Tensor, k: int = 2) -> PCA:
    """Principal components of points (N, D) by an SVD of the centred data. Each component's
    sign is fixed so that its largest-magnitude loading is positive (the same data always give
    the same picture)."""
    if points.ndim != 2 or len(points) < 2 or not 1 <= k <= min(points.shape):
        raise ConfigError(
            f"pca needs (N >= 2, D) points and 1 <= k <= min(N, D), got shape "
            f"{tuple(points.shape)} and k={k}"
        )
    x = points.detach().double()
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    components = vh[:k]
    signs = components.gather(1, components.abs().argmax(1, keepdim=True)).sign()
    components = components * torch.where(signs == 0, 1.0, signs)
    variance = s.square()
    total = variance.sum().clamp_min(torch.finfo(x.dtype).tiny)
    return PCA(
        projection=(x - mean) @ components.T,
        components=components,
        mean=mean,
        explained=variance[:k] / total,
    )


def nearest_neighbours(points: Tensor, k: int) -> Tensor:
    """(N, k) indices of each point's k nearest other points (Euclidean), nearest first."""
    if points.ndim != 2 or not 1 <= k < len(points):
        raise ConfigError(
            f"nearest_neighbours needs (N, D) points and 1 <= k < N, got shape "
            f"{tuple(points.shape)} and k={k}"
        )
    d = torch.cdist(points.double(), points.double())
    d.fill_diagonal_(float("inf"))
    return d.topk(k, dim=1, largest=False).indices


def neighbour_agreement(neighbours: Tensor, labels: Tensor) -> float:
    """Fraction of (point, neighbour) pairs whose labels agree."""
    return (labels[neighbours] == labels[:, None]).double().mean().item()


def interpolate(generator, z_a: Tensor, z_b: Tensor, n: int = 8) -> Tensor:
    """G((1 - t) z_a + t z_b) for n values of t from 0 to 1: images (n, C, H, W)."""
    if n < 2:
        raise ConfigError(f"interpolation needs n >= 2 images, got {n}")
    t = torch.linspace(0, 1, n, dtype=z_a.dtype, device=z_a.device)[:, None]
    with torch.no_grad():
        return generator((1 - t) * z_a[None] + t * z_b[None])


def recover_latents(model: ModelBundle, x: Tensor, **method_options) -> SearchResult:
    """GE's latents for images x (B, C, H, W), found from the codes E(x) alone."""
    model.require("generator", "encoder")
    physics = make_physics("encoder_cs", model.image_shape, encoder=model.encoder)
    with torch.no_grad():
        code = physics(x)
    return METHODS.build("ge", model=model, **method_options).solve(code, physics)


@dataclass
class ErrorSplit:
    """GE's MSE per image on real images and on generator samples ("fake", G(z0)), and the
    latent distance ||z* - z0|| on the fakes. On fakes the generator can make the image, so their
    error is the solver's; the excess on real images estimates the representation error."""

    real_mse: Tensor
    fake_mse: Tensor
    fake_latent_distance: Tensor

    def summary(self) -> dict[str, float]:
        real, fake = self.real_mse.double().mean().item(), self.fake_mse.double().mean().item()
        return {
            "real_mse": real,
            "fake_mse": fake,
            "solver_error": fake,
            "representation_error": real - fake,
            "representation_share": (real - fake) / real if real > 0 else float("nan"),
        }


def generator_samples(model: ModelBundle, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """n latents z0 from the generator's prior (seeded) and their images G(z0)."""
    g = model.generator
    z0 = g.sample_latent(n, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return z0, g.eval()(z0)


def error_split(
    real: Tensor, real_hat: Tensor, fake: Tensor, fake_hat: Tensor, z0: Tensor, z_fake: Tensor
) -> ErrorSplit:
    """The :class:`ErrorSplit` of GE's G(z*) on real images (real_hat) and on generator samples
    fake = G(z0) (fake_hat = G(z_fake))."""
    return ErrorSplit(
        real_mse=mse(real_hat.clamp(0, 1), real).cpu(),
        fake_mse=mse(fake_hat.clamp(0, 1), fake).cpu(),
        fake_latent_distance=(z_fake - z0.to(z_fake)).norm(dim=1).cpu(),
    )


def plot_latent_pca(
    spaces: dict[str, PCA], labels: Tensor, path: str | Path, label_name: str = "class"
) -> None:
    """One scatter panel per space (e.g. "GE latent z*", "encoder code E(x)"), points coloured by
    their label; written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .curves import save_figure

    fig, axes = plt.subplots(1, len(spaces), figsize=(4.6 * len(spaces), 4.2), squeeze=False)
    values = sorted(set(labels.tolist()))
    cmap = plt.get_cmap("tab10" if len(values) <= 10 else "tab20")
    for ax, (name, p) in zip(axes.flat, spaces.items()):
        xy = p.projection[:, :2].numpy()
        for j, v in enumerate(values):
            sel = (labels == v).numpy()
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=cmap(j % cmap.N), label=str(v))
        ev = p.explained[:2].tolist()
        ax.set_xlabel(f"PC1 ({100 * ev[0]:.0f} % of variance)")
        ax.set_ylabel(f"PC2 ({100 * ev[1]:.0f} %)" if len(ev) > 1 else "")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes.flat[-1].legend(title=label_name, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    save_figure(fig, path)


def save_neighbour_grid(
    path: str | Path, images: Tensor, neighbours: dict[str, Tensor], queries: list[int]
) -> None:
    """For each query image, one row per space: the query, then its nearest neighbours there."""
    rows, labels = [], []
    for q in queries:
        for name, idx in neighbours.items():
            rows.append(torch.cat([images[q : q + 1], images[idx[q]]]))
            labels.append(f"#{q} {name}")
    save_grid(path, rows, labels)
