"""Restoring a batch: the Python API behind ``genc restore``.

>>> from generative_encoder.io.zoo import shipped_model
>>> model = shipped_model()
>>> x = torch.rand(2, 1, 28, 28)
>>> physics = task_physics("denoise", model, {"sigma": 0.2})
>>> from generative_encoder.methods import METHODS
>>> csgm = METHODS.build("csgm", model=model, steps=5)
>>> out = restore(physics(x), physics, csgm)
>>> out.x.shape, out.z.shape, out.discrepancy.shape
(torch.Size([2, 1, 28, 28]), torch.Size([2, 64]), torch.Size([2]))

Folders of image files (``genc restore``): :mod:`generative_encoder.apps.restore_folder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from deepinv.models import Reconstructor
from deepinv.physics import LinearPhysics, Physics
from torch import Tensor

from ..errors import ConfigError
from ..eval.diagnostics import discrepancy_ratio, flag
from ..eval.metrics import measurement_residual
from ..io.checkpoints import ModelBundle
from ..methods.latent import LatentSearch, select_autoencoder
from ..physics.tasks import check_task_params, make_physics
from ..solve import SearchResult

# tasks whose observation is an image a user can hand us; the others are measurement vectors
IMAGE_TASKS = ("denoise", "deblur", "superres", "inpaint")


@dataclass
class Restoration:
    """x (B, C, S, S) in [0, 1]; residual (B,) = mean squared ||A(x) - y||; discrepancy (B,) =
    ||y - A(g)||^2 / (n sigma_ref^2) with g = G(z*) before any consistency step (the prior's fit;
    see :mod:`~generative_encoder.eval.diagnostics`); flagged (B,) bool when a threshold tau was
    given, else None. For latent-search methods also z (B, d), the
    final objective (B,) and the whole search (restarts, history), else None."""

    x: Tensor
    residual: Tensor
    discrepancy: Tensor
    flagged: Tensor | None = None
    z: Tensor | None = None
    objective: Tensor | None = None
    search: SearchResult | None = None


def task_physics(
    task: str,
    model: ModelBundle,
    params: dict | None = None,
    *,
    seed: int = 0,
    mask: Tensor | None = None,
    device: str = "cpu",
) -> Physics:
    """The degradation for ``task`` at the model's image shape. ``mask`` (H, W) of 0/1 (1 = kept)
    replaces the generated inpainting mask: the real-use case of a user's own missing region.
    For ``encoder_cs``, ``params["encoder"]`` names whose code is measured: "ge1" (default), "ge0",
    "vae" or "aegan" (a method that decodes or matches codes then needs that same encoder)."""
    params = dict(params or {})
    if task == "encoder_cs":
        family = params.get("encoder", "ge1")
        if not isinstance(family, str):
            raise ConfigError(f"encoder_cs's encoder is a family name, got {family!r}")
        params["encoder"] = select_autoencoder(model, family)[0]
    check_task_params(task, params)  # a "seed" or "device" among them is the run's, not the task's
    physics = make_physics(task, model.image_shape, seed=seed, device=device, **params)
    if mask is not None:
        if task != "inpaint":
            raise ConfigError(f"a mask file only applies to the inpaint task, not {task!r}")
        if mask.shape != model.image_shape[1:]:
            raise ConfigError(
                f"mask is {tuple(mask.shape)} but the model's images are {model.image_shape[1:]}"
            )
        if mask.min() == 1 or mask.max() == 0:
            raise ConfigError("the mask must keep some pixels and hide some (white = kept)")
        physics.update_parameters(mask=mask.to(physics.mask)[None, None].expand_as(physics.mask))
    return physics


def simulate(physics: Physics, x: Tensor, seed: int) -> Tensor:
    """Measurements y = physics(x) of clean images x (B, C, H, W), the noise drawn from ``seed``:
    a batch's noise then depends on its own seed only, not on the batches measured before it
    (the operator, a mask or a sensing matrix, is the physics' own and does not change)."""
    physics.noise_model.rng_manual_seed(seed)
    with torch.no_grad():
        return physics(x)


def simulate_each(physics: Physics, x: Tensor, seeds: Sequence[int]) -> Tensor:
    """Measurements of clean images x (B, C, H, W), image i measured alone with noise seeded by
    ``seeds[i]``: an image's measurement does not depend on its batch-mates."""
    if len(seeds) != len(x):
        raise ConfigError(f"simulate_each needs one seed per image ({len(x)}), got {len(seeds)}")
    return torch.cat([simulate(physics, x[i : i + 1], s) for i, s in enumerate(seeds)])


def restore(
    y: Tensor,
    physics: Physics,
    method: Reconstructor,
    *,
    seeds: Sequence[int] | None = None,
    init: Tensor | None = None,
    tau: float | None = None,
) -> Restoration:
    """Restore measurements y (B, ...) with a method (``METHODS.build(name, model=..., ...)``,
    built once for a run and used for every batch of it).

    seeds: one seed per problem for the random starts of latent-search methods (the engine's
    ``seeds``) and the random draws of methods marked ``seeded`` (``dip``); init: warm-start
    latents (B, d) or (B, R, d) for them; tau: the flag threshold
    on the discrepancy ratio (:func:`generative_encoder.eval.diagnostics.calibrate`).
    """
    if not torch.isfinite(y).all():
        raise ConfigError("the measurements contain NaN or Inf values")
    z = objective = search = None
    if isinstance(method, LatentSearch):
        search = method.solve(y, physics, seeds=seeds, init=init)
        x, z, objective = search.x, search.z, search.objective
    else:
        if init is not None:
            raise ConfigError(
                f"method {type(method).__name__} does not search a latent space: no init"
            )
        seeded = getattr(method, "seeded", False)  # e.g. dip: a network drawn per problem
        x = method(y, physics, seeds=seeds) if seeded and seeds is not None else method(y, physics)
    x = x.detach()
    with torch.no_grad():
        residual = measurement_residual(y, physics.A(x))
    # the fit of the prior: G(z*) before a consistency step made it agree with y
    fitted = x if search is None or search.generated is None else search.generated
    ratio = discrepancy_ratio(y, physics, fitted)
    return Restoration(
        x=x,
        residual=residual,
        discrepancy=ratio,
        flagged=None if tau is None else flag(ratio, tau),
        z=z,
        objective=objective,
        search=search,
    )


def viewable(y: Tensor, physics: Physics, like: Tensor) -> Tensor:
    """Measurements as pictures of ``like``'s shape: y itself when it has that shape, upsampled
    when smaller, A^dagger y for other linear physics, mid-grey when y is not an image at all."""
    if y.shape == like.shape:
        return y.clamp(0, 1)
    if y.dim() == 4:
        return torch.nn.functional.interpolate(y, size=like.shape[-2:], mode="nearest")
    if isinstance(physics, LinearPhysics):
        with torch.no_grad():
            return physics.A_dagger(y).clamp(0, 1)
    return torch.full_like(like, 0.5)
