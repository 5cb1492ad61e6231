"""Yeh et al.'s restoration with a GAN's own discriminator as its prior (ICASSP 2018).

    z* = argmin_z  sum_i W_i |y - A(G(z))|_i^p
                   + lambda [log(1 - D(G(z))) - log D(G(z)) - log p_z(z)]

and x_hat = G(z*), optionally Poisson-blended into the known pixels for inpainting. The bracket is
-log p_X(G(z)) up to a constant (the seed's derivation from the optimal discriminator), so lambda
weighs the whole prior, the latent density included.

- Data term: the p-th power of the p-norm, summed over measurement entries (p = 1 or 2). For
  p = 2 and W = 1 it is exactly CSGM's squared error, so the two methods' weights are on the same
  scale; the norm itself (a square root for p = 2) would have a gradient of constant size whatever
  the residual and would shift the balance against the prior as the fit improves. For inpainting
  the seed's "weighted masking function": the importance weights W of Yeh et al. (CVPR 2017),
  which weigh each known pixel by the share of missing pixels in its 7 x 7 neighbourhood, so the
  fill is fitted to its surroundings rather than to far-away pixels (``weighting="none"``: W = 1).
- Discriminator term: D = sigmoid(l) with l the discriminator's logit (N,). Then
  log(1 - D) = -softplus(l) and log D = -softplus(-l), so the bracket is
  softplus(-l) - softplus(l) = -l exactly: computed as -l, it never takes log(0).
- Latent prior: for N(0, I) latents lambda (-log p_z(z)) = lambda ||z||^2 / 2 + const, i.e. the
  engine's ``latent_l2`` with weight lambda / 2 (``latent_weight``); for uniform latents it is
  constant inside the box [-1, 1]^d, so the weight is 0 and the box is kept by projection
  (``clip="project"``) unless another ``clip`` is asked for.

The discriminator runs frozen, in eval mode, as every network the engine is given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from deepinv.physics import Inpainting
from torch import Tensor

from ..errors import ConfigError
from ..io.checkpoints import ModelBundle
from ..solve import SolveConfig, combine, expand_targets
from ..solve.terms import RowLoss
from .latent import LatentSearch
from .registry import METHODS

YEH_DISCRIMINATOR_WEIGHT = 0.01  # lambda: best mean PSNR of experiments/yeh_lambda_sweep.py
CONTEXT_WINDOW = 7  # side of the neighbourhood N(i) of the importance weights (Yeh et al. 2017)


def discriminator_prior(logit: Tensor) -> Tensor:
    """log(1 - D) - log D for D = sigmoid(logit); (N,) -> (N,). It equals -logit exactly, which is
    what is returned: the softplus form rounds differently in the vectorised and the scalar code
    paths of a CPU, so a row's value would depend on how many rows the batch has."""
    return -logit


def importance_weights(mask: Tensor, window: int = CONTEXT_WINDOW) -> Tensor:
    """Yeh et al.'s (CVPR 2017) weights of the contextual loss, mask (..., H, W) of 1 = known:
    W_i = (missing pixels in the window x window neighbourhood of i) / (pixels in it) for a known
    pixel i, 0 for a missing one. Known pixels next to the hole count most, far ones not at all."""
    if window < 1 or window % 2 == 0:
        raise ConfigError(f"window must be an odd integer >= 1, got {window}")
    flat = mask.reshape(-1, 1, *mask.shape[-2:]).to(torch.float64)
    pad = window // 2
    missing = F.avg_pool2d(F.pad(1 - flat, (pad,) * 4), window, stride=1, count_include_pad=True)
    inside = F.avg_pool2d(
        F.pad(torch.ones_like(flat), (pad,) * 4), window, stride=1, count_include_pad=True
    )
    weights = flat * missing / inside  # neighbourhoods cut by the border count pixels inside it
    return weights.reshape(mask.shape).to(mask.dtype)


def p_norm_fidelity(forward, y: Tensor, p: int, weights: Tensor | None = None) -> RowLoss:
    """Per-row sum_i w_i |A(x) - y|_i^p over measurement entries; y (N, ...), weights
    broadcastable to y (None: all 1)."""

    def loss(x: Tensor, z: Tensor, target: Tensor) -> Tensor:
        r = forward(x) - target
        r = r.square() if p == 2 else r.abs()
        if weights is not None:
            r = r * weights
        return r.flatten(1).sum(1)  # (N,)

    return RowLoss(loss, y)


@METHODS.register("yeh")
class Yeh(LatentSearch):
    """Yeh et al.: sum_i W_i |y - A(G(z))|_i^p + lambda [log(1 - D) - log D - log p_z(z)].

    p: 1 or 2 (the data term's power and norm). disc_weight: lambda >= 0; for N(0, I) latents
    -log p_z(z) = ||z||^2 / 2, so the prior's weight is lambda / 2 (``latent_weight`` overrides
    it; uniform latents: 0, and the box is kept by projection). weighting: "importance" (Yeh et
    al.'s W for inpainting, the default; ``window`` its neighbourhood) or "none" (W = 1).
    blend: Poisson-blend G(z*) into the known pixels (``Inpainting`` only), the seed's last step:
    the same as ``consistency="blend"`` of every latent method. Other options: the
    engine's (``steps``, ``lr``, ``restarts``, ``clip``, ...). Needs a generator and a
    discriminator.
    """

    name = "yeh"
    needs = ("generator", "discriminator")

    def __init__(
        self,
        model: ModelBundle,
        config: SolveConfig | None = None,
        latent_weight: float | None = None,
        p: int = 2,
        disc_weight: float = YEH_DISCRIMINATOR_WEIGHT,
        weighting: str = "importance",
        window: int = CONTEXT_WINDOW,
        blend: bool = False,
        **config_overrides,
    ):
        model.require(*self.needs)
        if not disc_weight >= 0:
            raise ConfigError(f"disc_weight must be >= 0, got {disc_weight}")
        uniform = model.generator.latent_dist == "uniform"
        if latent_weight is None:
            latent_weight = 0.0 if uniform else disc_weight / 2
        if uniform and "clip" not in config_overrides and (config is None or config.clip is None):
            config_overrides["clip"] = "project"  # -log p_z is finite only inside the box
        if blend:
            if config_overrides.get("consistency", "blend") != "blend":
                raise ConfigError("blend=True is consistency='blend'; give one of the two")
            config_overrides["consistency"] = "blend"
        super().__init__(model, config, latent_weight=latent_weight, **config_overrides)
        if p not in (1, 2):
            raise ConfigError(f"p must be 1 or 2, got {p}")
        if weighting not in ("importance", "none"):
            raise ConfigError(f"weighting must be 'importance' or 'none', got {weighting!r}")
        importance_weights(torch.ones(1, 1), window)  # checks window now
        self.p, self.disc_weight = p, float(disc_weight)
        self.weighting, self.window = weighting, window

    def data_term(self, y, physics, restarts):
        weights = None
        if self.weighting == "importance" and isinstance(physics, Inpainting):
            weights = importance_weights(physics.mask.detach(), self.window)
        fidelity = p_norm_fidelity(physics.A, expand_targets(y, restarts), self.p, weights)
        discriminator, weight = self.model.discriminator, self.disc_weight
        if weight == 0:
            return fidelity, [discriminator]
        prior = RowLoss(lambda x, z: weight * discriminator_prior(discriminator(x)))
        return combine(fidelity, prior), [discriminator]
