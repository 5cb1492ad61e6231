"""Intermediate Layer Optimization (ILO, Daras et al., ICML 2021): after the latent search, each
problem moves an intermediate activation of the generator, G = G_after o G_before, within an l1
ball around the search's own h0 = G_before(z*), on the method's own per-row objective evaluated
on x = G_after(h).

The split points are the inputs of the DCGAN generator's transposed convolutions: ``layer`` k
(1 <= k <= the number of them) optimises the map fed to the k-th, so 1 is the stem's
(c, s0, s0) map and the last is the map the final transposed convolution turns into the image;
a negative k counts from the end as Python's indices do (-1: that last map).
BatchNorm stays in eval mode. Adam is element-wise and the projection is per problem, so a
problem follows the same path alone as in any batch of two or more (``latent.py`` runs a lone
problem beside a copy of itself).

The step count is chosen per problem as in :mod:`~generative_encoder.solve.adapt`: a
``score(x) -> (B,)`` of the measurements read every ``check_every`` steps; with ``stops`` a
problem is done at the first check whose score is <= 0 (the discrepancy principle), otherwise
each problem keeps the iterate of lowest score (held-out error); step 0 is the search's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.dcgan import DCGANGenerator
from ..registry import check_finite_fields
from .adapt import BestIterate
from .engine import frozen
from .terms import LossFn


@dataclass(frozen=True)
class ILOConfig:
    """How to optimise an intermediate layer per problem; ``steps`` 0 is off.

    steps: Adam steps at most. layer: the split point (see the module), k >= 1 or k <= -1 from
        the end.
    radius: the l1 ball's radius as a mean per element, ||h - h0||_1 <= radius * n with n the
        elements of one problem's activation (so the same radius suits every layer); >= 0,
        0 keeps the search's answer. lr: Adam's learning rate for h (> 0).
    check_every: steps between the checks that choose each problem's step count.
    Defaults chosen on TRAINING images, 200 search steps + 100 ILO steps. Layer -2 (the input of
    the next-to-last transposed convolution) was best in mean PSNR for all three shipped models:
    mnist5k (32 digits, ge and csgm, four tasks), where it is layer 1 (the stem's 96 x 7 x 7
    map) and beat layer 2 by 0.16 dB; berea64 (16 patches, csgm; ``experiments/ilo_layer.py``),
    where layer 3 (96 x 16 x 16) beat 1 / 2 / 4 on super-resolution (15.03 dB against 13.70 /
    14.52 / 14.00) and deblurring (20.19 against 15.26 / 17.71 / 16.91), block inpainting
    within 0.12 dB at every layer; celeba64 (16 faces, csgm, four tasks), where layer 3
    (128 x 16 x 16) led the mean (25.58 dB against 24.75 / 25.47 / 24.47), first on deblurring,
    0.1-0.5 dB behind layer 2 on denoising, free-form inpainting and super-resolution. On the
    digits lr 1e-2 beat 3e-2 and 3e-3; radius 0.2 matched 0.5 and 1 (the ball no longer
    binds; on rock 0.2 and 1 were within 0.1 dB at every layer) and beat 0.05 by 0.26 dB.
    """

    steps: int = 0
    layer: int = -2
    radius: float = 0.2
    lr: float = 1e-2
    check_every: int = 10

    def __post_init__(self):
        check_finite_fields(self)
        if not (isinstance(self.steps, int) and self.steps >= 0):
            raise ConfigError(f"ilo_steps must be an integer >= 0, got {self.steps!r}")
        if not (isinstance(self.layer, int) and self.layer != 0):
            raise ConfigError(
                f"ilo_layer must be a non-zero integer (k >= 1, or k <= -1 from the end), "
                f"got {self.layer!r}"
            )
        if not self.radius >= 0:
            raise ConfigError(f"ilo_radius must be >= 0, got {self.radius}")
        if not self.lr > 0:
            raise ConfigError(f"ilo_lr must be > 0, got {self.lr}")
        if not (isinstance(self.check_every, int) and self.check_every >= 1):
            raise ConfigError(f"ilo_check_every must be an integer >= 1, got {self.check_every!r}")


@dataclass
class Intermediate:
    """Each problem's chosen iterate: x (B, C, H, W) = G_after(h), objective (B,) of the loss
    there, step (B,) the ILO steps taken to reach it (0: the search's answer)."""

    x: Tensor
    objective: Tensor
    step: list[int]


def split_generator(
    generator: nn.Module, layer: int
) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    """(G_before, G_after) with G = G_after o G_before: G_before maps z (N, d) to the input of
    the ``layer``-th transposed convolution (N, c, s, s) (counted from the end if negative),
    G_after that map to the image."""
    if not isinstance(generator, DCGANGenerator):
        raise ConfigError(
            f"ilo_steps needs a DCGAN generator to split, got {type(generator).__name__}"
        )
    cuts = [i for i, m in enumerate(generator.blocks) if isinstance(m, nn.ConvTranspose2d)]
    n = len(cuts)
    if not (1 <= layer <= n or -n <= layer <= -1):
        raise ConfigError(
            f"ilo_layer must be in 1..{n} or -{n}..-1 for this generator, got {layer}"
        )
    cut = cuts[layer - 1 if layer > 0 else n + layer]
    head, tail = generator.blocks[:cut], generator.blocks[cut:]
    return (lambda z: head(generator.stem(z.flatten(1)))), tail


def project_l1_ball(v: Tensor, radius: float | Tensor) -> Tensor:
    """Each row of v (B, n) projected onto {w : ||w||_1 <= radius} (radius >= 0, a float or
    (B,)), exactly (Duchi et al., ICML 2008): rows already inside are returned unchanged."""
    r = torch.as_tensor(radius, dtype=v.dtype, device=v.device).expand(len(v))
    a = v.abs()
    inside = a.sum(1) <= r  # (B,)
    u = a.sort(dim=1, descending=True).values  # (B, n)
    css = u.cumsum(1)
    j = torch.arange(1, v.shape[1] + 1, dtype=v.dtype, device=v.device)
    rho = ((u - (css - r[:, None]) / j) > 0).sum(1).clamp_min(1)  # (B,) the support size
    theta = (css.gather(1, (rho - 1)[:, None]) - r[:, None]) / rho[:, None].to(v.dtype)
    w = v.sign() * (a - theta).clamp_min(0)
    return torch.where(inside[:, None], v, w)


@torch.enable_grad()
def optimize_intermediate(
    generator: nn.Module,
    loss_fn: LossFn,
    z: Tensor,
    x: Tensor,
    score: Callable[[Tensor], Tensor],
    stops: bool,
    config: ILOConfig,
    *,
    networks: Sequence[nn.Module] = (),
) -> Intermediate:
    """From the search's answer z (B, d), x = G(z) (B, C, H, W): Adam on h = h0 + delta,
    h0 = G_before(z), minimising ``loss_fn(G_after(h), z) -> (B,)`` summed over b, delta
    projected onto the l1 ball of ``config.radius`` (per element) after every step.

    score: (B, C, H, W) -> (B,), lower better, read every ``config.check_every`` steps and at
    the last; stops: a problem whose best score is <= 0 is done. Returns each problem's
    best-scored iterate."""
    before, after = split_generator(generator, config.layer)
    z = z.detach()
    with frozen(generator, *networks), torch.no_grad():
        kept = BestIterate(score, stops, x, loss_fn(x, z))
        h0 = before(z)  # (B, c, s, s)
    if config.radius == 0 or kept.all_done():
        return Intermediate(kept.x, kept.objective, kept.step.tolist())
    total = config.radius * h0[0].numel()
    delta = torch.zeros_like(h0, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=config.lr)
    with frozen(generator, *networks):
        for step in range(config.steps + 1):
            x_t = after(h0 + delta)  # (B, C, H, W)
            loss = loss_fn(x_t, z)  # (B,)
            if step > 0 and (step % config.check_every == 0 or step == config.steps):
                kept.check(step, x_t, loss)
                if kept.all_done():
                    break
            if step == config.steps:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            with torch.no_grad():
                delta.copy_(project_l1_ball(delta.flatten(1), total).view_as(delta))
    return Intermediate(kept.x, kept.objective, kept.step.tolist())


__all__ = [
    "ILOConfig",
    "Intermediate",
    "optimize_intermediate",
    "project_l1_ball",
    "split_generator",
]
