"""``latent_weight="auto"``: lambda chosen for each problem from its measurements alone.

Every lambda of ``AUTO_GRID`` (multiples of the method's default) is solved in one batch
(L x B problems). With Gaussian noise of known sigma, the discrepancy principle: for each
problem, the largest lambda whose residual ratio ||y - A(x)||^2 / (n sigma^2) is
<= DISCREPANCY_TAU x max(1, its smallest ratio over the grid) (the max: an image outside G's
range leaves more than the noise at every lambda); the chosen lambda's solve is the answer.
Without (inpainting, noise-free tasks): HELD_OUT_FRACTION of the measured entries are hidden
from the fit, the lambda that predicts a problem's hidden entries best wins, and the final solve
uses every measurement. A problem's choice reads its own rows only, so it is the same alone or
in any batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from deepinv.physics import Inpainting, Physics
from torch import Tensor

from ..errors import ConfigError
from ..physics.noise import noise_sigma, residual
from ..physics.seeds import HELD_OUT_SEED
from .engine import SearchResult, take_problems

AUTO_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
DISCREPANCY_TAU = 1.1
HELD_OUT_FRACTION = 0.1

Search = Callable[..., SearchResult]
"""``search(y, physics, weight, seeds, init, on_step)``: a method's latent search of y (B', ...)
with lambda ``weight`` (a float, or one per row (B'*R,))."""


@dataclass
class AutoWeight:
    """How ``latent_weight="auto"`` chose: rule ("discrepancy" or "held_out"), the lambdas tried
    (L,), each problem's score of each (B lists of L: discrepancy ratio, or mean held-out squared
    error), and each problem's chosen lambda (B,)."""

    rule: str
    grid: list[float]
    scores: list[list[float]]
    chosen: list[float]


def choose_weight(
    search: Search,
    y: Tensor,
    physics: Physics,
    default: float,
    restarts: int,
    seeds: list[int],
    init: Tensor | None,
    on_step,
    hide_any: bool,
    name: str,
) -> tuple[SearchResult, AutoWeight]:
    """Solve y (B, ...) at each problem's chosen lambda. ``hide_any``: the method's data term
    reads A(x) only, so entries of any measurement can be held out; otherwise only inpainting's
    pixels can (``name`` is the method's, for the error)."""
    b = y.shape[0]
    grid = [default * g for g in AUTO_GRID]
    weights = torch.tensor(grid, device=y.device).repeat_interleave(b * restarts)
    rep = len(grid)
    init_rep = None if init is None else init.repeat(rep, *[1] * (init.dim() - 1))
    y_rep = y.repeat(rep, *[1] * (y.dim() - 1))  # (L*B, ...)
    sigma = noise_sigma(physics)
    if sigma is not None:
        result = search(y_rep, physics, weights, seeds * rep, init_rep, on_step)
        ratios = (residual(y_rep, physics, result.x) / (y[0].numel() * sigma**2)).view(
            rep, b
        )  # (L, B)
        target = DISCREPANCY_TAU * ratios.min(0).values.clamp_min(1.0)  # (B,)
        levels = torch.arange(rep, device=y.device)[:, None].expand(rep, b)
        best = torch.where(ratios <= target, levels, -1).max(0).values  # (B,)
        best = torch.where(best < 0, ratios.argmin(0), best)
        auto = AutoWeight("discrepancy", grid, ratios.T.tolist(), [grid[i] for i in best.tolist()])
        return take_problems(result, best * b + torch.arange(b, device=y.device)), auto
    fit_physics, y_fit, held = held_out_split(y, physics, hide_any, name)
    result = search(
        y_fit.repeat(rep, *[1] * (y.dim() - 1)), fit_physics, weights, seeds * rep, init_rep, None
    )
    with torch.no_grad():
        miss = (physics.A(result.x) - y_rep) * held
        errors = (miss.flatten(1).square().sum(1) / held.sum()).view(rep, b)  # (L, B)
    best = rep - 1 - errors.flip(0).argmin(0)  # ties go to the larger lambda     # (B,)
    chosen = [grid[i] for i in best.tolist()]
    weight = torch.tensor(chosen, device=y.device).repeat_interleave(restarts)  # (B*R,)
    auto = AutoWeight("held_out", grid, errors.T.tolist(), chosen)
    return search(y, physics, weight, seeds, init, on_step), auto


def held_out_split(
    y: Tensor, physics: Physics, hide_any: bool, name: str
) -> tuple[Physics, Tensor, Tensor]:
    """(physics of the fit, y of the fit, held-out indicator broadcastable to y): a seeded
    HELD_OUT_FRACTION of the measured entries is hidden from the fit."""
    rng = torch.Generator().manual_seed(HELD_OUT_SEED)
    if isinstance(physics, Inpainting):
        mask = physics.mask.detach()  # (1, 1|C, H, W)
        draw = torch.rand(mask.shape, generator=rng).to(mask.device)
        held = (draw < HELD_OUT_FRACTION).to(mask.dtype) * mask
        fit = Inpainting(tuple(y.shape[1:]), mask=(mask - held)[0], device=mask.device)
        return fit, y * (1 - held), held
    if hide_any:
        draw = torch.rand(y.shape[1:], generator=rng).to(y.device)
        held = (draw < HELD_OUT_FRACTION).to(y.dtype)[None]  # (1, ...)
        return _Masked(physics, 1 - held), y * (1 - held), held
    raise ConfigError(
        f"latent_weight='auto' with {name} needs a known noise level "
        f"(sigma > 0) or an inpainting task; {type(physics).__name__} has "
        "neither"
    )


class _Masked(Physics):
    """A(x) = keep * inner.A(x): a physics with some measurement entries hidden."""

    def __init__(self, inner: Physics, keep: Tensor):
        super().__init__()
        self.inner, self.keep = inner, keep

    def A(self, x: Tensor, **kwargs) -> Tensor:
        return self.inner.A(x) * self.keep
