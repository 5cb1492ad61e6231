"""Several answers per problem: the K best *distinct* restarts of a latent search.

Restarts that converge to the same minimum are one answer, not two: candidates are taken in order
of objective (lowest first), and a restart is kept only if its latent is at least ``min_distance``
(Euclidean) from every one kept before it. Chosen by the objective only, never by a clean image.

>>> import torch
>>> z = torch.tensor([[[0., 0.], [0.01, 0.], [3., 0.]]])       # (B=1, R=3, d=2)
>>> objective = torch.tensor([[1.0, 0.5, 2.0]])                 # restart 1 is best
>>> c = distinct_candidates(z, objective, k=3, min_distance=0.1)
>>> c.index.tolist(), c.objective.tolist()                      # restart 0 is restart 1's twin
([[1, 2, -1]], [[0.5, 2.0, inf]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError

MIN_DISTANCE_PER_SQRT_D = 0.1  # default min_distance = 0.1 * sqrt(d) (random N(0, I) latents
#                                 lie about sqrt(2 d) apart, the same minimum within ~0.01 sqrt(d))


@dataclass
class Candidates:
    """index (B, K) restart indices, -1 where a problem has fewer than K distinct restarts;
    objective (B, K), inf where missing; z (B, K, d), zeros where missing; count (B,) found."""

    index: Tensor
    objective: Tensor
    z: Tensor
    count: Tensor


def default_min_distance(latent_dim: int) -> float:
    return MIN_DISTANCE_PER_SQRT_D * math.sqrt(latent_dim)


def distinct_candidates(
    restart_z: Tensor, restart_objective: Tensor, k: int, min_distance: float | None = None
) -> Candidates:
    """The ``k`` lowest-objective restarts per problem that are pairwise at least ``min_distance``
    apart. restart_z (B, R, d), restart_objective (B, R) (a SearchResult's); NaN never wins.
    min_distance None: ``default_min_distance(d)``."""
    if k < 1:
        raise ConfigError(f"the number of candidates must be >= 1, got {k}")
    if restart_z.ndim != 3 or restart_objective.shape != restart_z.shape[:2]:
        raise ConfigError(
            f"need restart_z (B, R, d) and restart_objective (B, R), got "
            f"{tuple(restart_z.shape)} and {tuple(restart_objective.shape)}"
        )
    b, r, d = restart_z.shape
    if min_distance is None:
        min_distance = default_min_distance(d)
    if min_distance < 0:
        raise ConfigError(f"min_distance must be >= 0, got {min_distance}")
    order = restart_objective.nan_to_num(nan=float("inf")).argsort(dim=1, stable=True)  # (B, R)
    distance = torch.cdist(restart_z.float(), restart_z.float())  # (B, R, R)
    index = torch.full((b, k), -1, dtype=torch.long)
    for i in range(b):  # B x R x K, tiny: plain loops read best
        kept: list[int] = []
        for j in order[i].tolist():
            if len(kept) == k:
                break
            if all(distance[i, j, q] >= min_distance for q in kept):
                kept.append(j)
        index[i, : len(kept)] = torch.tensor(kept, dtype=torch.long)
    found = index >= 0
    safe = index.clamp_min(0).to(restart_z.device)
    rows = torch.arange(b, device=restart_z.device)[:, None]
    objective = torch.where(
        found.to(restart_z.device),
        restart_objective[rows, safe],
        torch.full_like(restart_objective[rows, safe], float("inf")),
    )
    z = restart_z[rows, safe] * found.to(restart_z.device)[..., None]
    return Candidates(index=index, objective=objective, z=z, count=found.sum(1))
