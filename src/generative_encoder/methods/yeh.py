"""Yeh et al.'s restoration with a GAN's own discriminator as its prior (ICASSP 2018).

    z* = argmin_z  sum_i |y - A(G(z))|_i^p  +  lambda [log(1 - D(G(z))) - log D(G(z))]  -  log p_z(z)

and x_hat = G(z*), optionally Poisson-blended into the known pixels for inpainting.

- Data term: the p-th power of the p-norm, summed over measurement entries (p = 1 or 2). For
  p = 2 it is exactly CSGM's squared error, so the two methods' weights are on the same scale;
  the norm itself (a square root for p = 2) would have a gradient of constant size whatever the
  residual and would shift the balance against the prior as the fit improves.
- Discriminator term: D = sigmoid(l) with l the discriminator's logit (N,). Then
  log(1 - D) = -softplus(l) and log D = -softplus(-l), so the bracket is
  softplus(-l) - softplus(l) = -l exactly: computed from the logit, it never takes log(0).
- Latent prior: for N(0, I) latents -log p_z(z) = ||z||^2 / 2 + const, i.e. the engine's
  ``latent_l2`` with weight 1/2 (``latent_weight``); for uniform latents it is constant inside the
  box [-1, 1]^d, so the weight is 0 and the box is kept by projection (``clip="project"``) unless
  another ``clip`` is asked for.

The discriminator runs frozen, in eval mode, as every network the engine is given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from deepinv.physics import Inpainting, Physics
from torch import Tensor

from ..checkpoints import ModelBundle
from ..errors import ConfigError
from ..solve import LossFn, SolveConfig, expand_targets
from .latent import LatentSearch
from .registry import METHODS

YEH_DISCRIMINATOR_WEIGHT = 0.1  # lambda: best of 0, 0.01, 0.1, 1 on 16 training digits, 4 tasks
NORMAL_PRIOR_WEIGHT = 0.5  # -log N(z; 0, I) = ||z||^2 / 2 + const
BLEND_TOL = 1e-6  # conjugate gradient: stop at this relative residual...
BLEND_MAX_ITER = 2000  # ...or after this many iterations


def discriminator_prior(logit: Tensor) -> Tensor:
    """log(1 - D) - log D for D = sigmoid(logit), computed stably; (N,) -> (N,). Equals -logit."""
    return F.softplus(-logit) - F.softplus(logit)


def p_norm_fidelity(forward, y: Tensor, p: int) -> LossFn:
    """Per-row sum_i |A(x) - y|_i^p over measurement entries; y (N, ...)."""

    def loss(x: Tensor, z: Tensor) -> Tensor:
        r = (forward(x) - y).flatten(1)
        return r.square().sum(1) if p == 2 else r.abs().sum(1)                  # (N,)

    return loss


@METHODS.register("yeh")
class Yeh(LatentSearch):
    """Yeh et al.: ||y - A(G(z))||_p^p + lambda [log(1 - D(G(z))) - log D(G(z))] - log p_z(z).

    p: 1 or 2 (the data term's power and norm). disc_weight: lambda >= 0. latent_weight: weight of
    ||z||^2 (default 1/2, i.e. -log p_z for N(0, I); 0 for uniform latents). blend: Poisson-blend
    G(z*) into the known pixels (``Inpainting`` only). Other options: the engine's
    (``steps``, ``lr``, ``restarts``, ``clip``, ...). Needs a generator and a discriminator.
    """

    name = "yeh"
    needs = ("generator", "discriminator")

    def __init__(self, model: ModelBundle, config: SolveConfig | None = None,
                 latent_weight: float | None = None, p: int = 2,
                 disc_weight: float = YEH_DISCRIMINATOR_WEIGHT, blend: bool = False,
                 **config_overrides):
        model.require(*self.needs)
        uniform = model.generator.latent_dist == "uniform"
        if latent_weight is None:
            latent_weight = 0.0 if uniform else NORMAL_PRIOR_WEIGHT
        if uniform and "clip" not in config_overrides and (config is None or config.clip is None):
            config_overrides["clip"] = "project"  # -log p_z is finite only inside the box
        super().__init__(model, config, latent_weight=latent_weight, **config_overrides)
        if p not in (1, 2):
            raise ConfigError(f"p must be 1 or 2, got {p}")
        if not disc_weight >= 0:
            raise ConfigError(f"disc_weight must be >= 0, got {disc_weight}")
        self.p, self.disc_weight, self.blend = p, float(disc_weight), bool(blend)

    def data_term(self, y, physics, restarts):
        fidelity = p_norm_fidelity(physics.A, expand_targets(y, restarts), self.p)
        discriminator, weight = self.model.discriminator, self.disc_weight

        def loss(x: Tensor, z: Tensor) -> Tensor:
            if weight == 0:
                return fidelity(x, z)
            return fidelity(x, z) + weight * discriminator_prior(discriminator(x))

        return loss, [discriminator]

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        if self.blend and not isinstance(physics, Inpainting):
            raise ConfigError("blend=True applies to inpainting only, got "
                              f"{type(physics).__name__}")
        x = self.solve(y, physics, **kwargs).x
        if self.blend:
            x = poisson_blend(x, y, physics.mask)
        return x


def poisson_blend(generated: Tensor, known: Tensor, mask: Tensor, *, tol: float = BLEND_TOL,
                  max_iter: int = BLEND_MAX_ITER) -> Tensor:
    """Blend ``generated`` into ``known`` by solving Poisson's equation in the hole.

    generated, known (B, C, H, W); mask broadcastable to them, 1 = known pixel, 0 = hole. Returns f
    with f = known where mask is 1 (exactly: copied, not solved) and, in the hole,
    Laplacian(f) = Laplacian(generated) with the known pixels as Dirichlet boundary values
    (4-neighbour Laplacian; Neumann at the image border, i.e. pixels outside are not neighbours).
    Solved by conjugate gradient on the hole's Laplacian, all B x C planes at once. A hole plane
    with no known pixel around it has no boundary and keeps ``generated``.
    """
    hole = (mask.expand_as(generated) == 0)
    g = generated.detach().double()
    y = known.detach().double().expand_as(g)
    inside = torch.ones_like(g)
    hole_f = hole.double()

    def neighbours(t: Tensor) -> Tensor:
        """Sum over the 4 neighbours inside the image, (B, C, H, W)."""
        p = F.pad(t, (1, 1, 1, 1))
        return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]

    degree = neighbours(inside)                                                    # 2, 3 or 4
    guidance = degree * g - neighbours(g)                                          # Laplacian of g
    rhs = hole_f * (guidance + neighbours((1 - hole_f) * y))                       # boundary moves

    def apply(v: Tensor) -> Tensor:  # the Laplacian restricted to the hole (SPD), v zero outside
        return hole_f * (degree * v - neighbours(hole_f * v))

    has_boundary = (hole & (neighbours(1 - hole_f) > 0)).flatten(2).any(2)         # (B, C)
    solvable = has_boundary[..., None, None].double()
    rhs = rhs * solvable
    f = hole_f * g * solvable                                                      # warm start
    r = rhs - apply(f)
    d = r.clone()
    rr = _dot(r, r)
    stop = (tol * torch.sqrt(_dot(rhs, rhs))).clamp_min(1e-30) ** 2
    for _ in range(max_iter):
        if bool((rr <= stop).all()):
            break
        ad = apply(d)
        alpha = rr / _dot(d, ad).clamp_min(1e-300)
        f = f + alpha * d
        r = r - alpha * ad
        rr_new = _dot(r, r)
        d = r + (rr_new / rr.clamp_min(1e-300)) * d
        rr = rr_new
    filled = torch.where(solvable.bool(), f, g).to(generated.dtype).clamp(0, 1)
    return torch.where(hole, filled, known.expand_as(generated))


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-plane inner product, (B, C, H, W) x 2 -> (B, C, 1, 1)."""
    return (a * b).sum((-2, -1), keepdim=True)
