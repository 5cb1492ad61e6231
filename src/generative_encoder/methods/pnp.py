"""The priors a user would try beside a GAN: plug-and-play with the model's own learned denoiser,
and the untrained Deep Image Prior. Both are called as ``method(y, physics) -> x_hat`` (B, C, H,
W) in [0, 1] and never see the clean image.

- ``pnp``: DPIR (Zhang et al., TPAMI 2021): half-quadratic splitting with deepinv's ``PnP`` prior
  around the model folder's denoiser (``genc train denoiser``) and deepinv's ``L2`` data step, on
  DPIR's schedule: the denoiser's noise level falls log-uniformly from 49/255 to the task's noise
  std over ``iterations`` steps, the data step's weight follows it.
- ``dip``: Deep Image Prior (Ulyanov et al., CVPR 2018): a randomly initialised deepinv
  ``ConvDecoder`` per image, its weights fitted to ||A(f(z)) - y||^2 by Adam. Every problem has
  its own network (its weights drawn from its seed), all fitted in one batched call
  (``torch.func.vmap`` over stacked weights). Stopped without the clean image: at the first check
  where the residual falls to the noise level (the discrepancy principle) when the noise std is
  known and > 0; otherwise on a seeded tenth of the measured entries held out from the fit, whose
  error picks the iterate returned.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from deepinv.models import ConvDecoder, Reconstructor
from deepinv.optim import L2, PnP
from deepinv.optim.optimizers import BaseOptim, create_iterator
from deepinv.physics import (
    Blur,
    BlurFFT,
    CompressedSensing,
    Downsampling,
    Inpainting,
    LinearPhysics,
    Physics,
)
from torch import Tensor
from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state, vmap

from ..errors import ConfigError
from ..io.checkpoints import DENOISER_NAME, ModelBundle
from ..physics import check_measurements
from ..physics.seeds import stream_seed
from ..solve import rowwise
from .classical import fill_holes, noise_std
from .registry import METHODS

DPIR_SIGMA_START = 49 / 255  # DPIR's first denoiser noise level
DPIR_ITERATIONS = 8  # deepinv's DPIR
DPIR_SIGMA_FLOOR = 0.01  # DPIR's floor of the noise level in its data-step weights
DPIR_LAMBDA = 1 / 0.23  # DPIR's regularisation weight
DIP_STREAM = 7  # a DIP problem's network weights and input, from its seed
DIP_HELD_OUT_STREAM = 8  # which of its measured entries DIP holds out when the noise is unknown
DIP_HELD_OUT_FRACTION = 0.1


def _linear(physics: Physics, method: str) -> LinearPhysics:
    if not isinstance(physics, LinearPhysics):
        raise ConfigError(
            f"method {method!r} needs a linear physics (A x + noise), got {type(physics).__name__}"
        )
    return physics


def _start(y: Tensor, physics: LinearPhysics) -> Tensor:
    """A first image (B, C, H, W) from y: holes filled with the observed mean (inpainting),
    bicubic upsampling (super-resolution), else the pseudo-inverse A^+ y."""
    if isinstance(physics, Inpainting):
        return fill_holes(y, physics.mask)
    if isinstance(physics, Downsampling):
        x = F.interpolate(y, scale_factor=physics.factor, mode="bicubic", align_corners=False)
        return x.clamp(0, 1)
    with torch.no_grad():
        return (
            physics.A_dagger(y) if isinstance(physics, CompressedSensing) else physics.A_adjoint(y)
        )


class _RowwiseDenoiser(torch.nn.Module):
    """The model's denoiser, run so that an image alone is denoised as in any batch."""

    def __init__(self, denoiser: torch.nn.Module):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: Tensor, sigma, **kwargs) -> Tensor:
        return rowwise(lambda t: self.denoiser(t, sigma), x)


def dpir_schedule(sigma: float, iterations: int) -> tuple[list[float], list[float]]:
    """DPIR's (denoiser noise levels, data-step sizes) for noise std ``sigma``: levels
    log-spaced from max(49/255, sigma) down to max(sigma, 0.01), sizes
    ``DPIR_LAMBDA * (level / max(sigma, 0.01))^2``."""
    end = max(sigma, DPIR_SIGMA_FLOOR)
    start = max(DPIR_SIGMA_START, end)
    levels = np.logspace(math.log10(start), math.log10(end), iterations)
    return levels.tolist(), (DPIR_LAMBDA * (levels / end) ** 2).tolist()


@METHODS.register("pnp")
class PlugAndPlay(Reconstructor):
    """DPIR plug-and-play with the model's denoiser (see the module); ``iterations``: HQS steps.
    Images of one noise std are solved together; each group's schedule is its own."""

    def __init__(self, model: ModelBundle, iterations: int = DPIR_ITERATIONS):
        super().__init__()
        if iterations < 1:
            raise ConfigError(f"iterations must be >= 1, got {iterations}")
        model.require(DENOISER_NAME)
        self.model, self.iterations = model, iterations
        self.prior = PnP(denoiser=_RowwiseDenoiser(model.network(DENOISER_NAME)))

    @torch.no_grad()
    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        check_measurements(y, physics, self.model.image_shape)
        physics = _linear(physics, "pnp")
        sigmas = noise_std(physics, y, "pnp")
        out = torch.empty(len(y), *self.model.image_shape, device=y.device)
        for sigma in np.unique(sigmas):
            rows = torch.from_numpy(np.flatnonzero(sigmas == sigma)).to(y.device)
            out[rows] = self._solve(y[rows], physics, float(sigma))
        return out.clamp(0, 1)

    def _solve(self, y: Tensor, physics: LinearPhysics, sigma: float) -> Tensor:
        levels, steps = dpir_schedule(sigma, self.iterations)
        solver = BaseOptim(
            create_iterator("HQS", prior=self.prior, g_first=False),
            max_iter=self.iterations,
            data_fidelity=L2(),
            prior=self.prior,
            early_stop=False,
            params_algo={"stepsize": steps, "g_param": levels},
        )
        if isinstance(physics, Blur) and physics.padding == "circular":
            # the same A; its data step in closed form (FFT) rather than by conjugate gradient,
            # whose shared stopping test would tie an image's answer to its batch-mates
            physics = BlurFFT(
                img_size=tuple(y.shape[1:]),
                filter=physics.filter,
                noise_model=physics.noise_model,
                device=y.device,
            )
        return solver(y, physics, init=_start(y, physics))


@METHODS.register("dip")
class DeepImagePrior(Reconstructor):
    """Deep Image Prior (see the module). ``iterations``: the most Adam steps; ``lr``: Adam's;
    ``channels``/``layers``: the ConvDecoder's (32 x 4 matched 64 x 5 on 64 training digits,
    denoising at 0.1: 24.85 against 24.87 dB, at a sixth of the time); ``check_every``: steps
    between stopping checks.
    Call with ``seeds`` (one per problem) for the networks' draws; default 0, 1, 2, ...."""

    seeded = True  # the bench and restore pass one seed per problem

    def __init__(
        self,
        model: ModelBundle | None = None,
        iterations: int = 1000,
        lr: float = 0.01,
        channels: int = 32,
        layers: int = 4,
        check_every: int = 10,
    ):
        super().__init__()
        for name, value in (
            ("iterations", iterations),
            ("channels", channels),
            ("layers", layers),
            ("check_every", check_every),
        ):
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if not lr > 0:
            raise ConfigError(f"lr must be > 0, got {lr}")
        self.image_shape = None if model is None else model.image_shape
        self.iterations, self.lr, self.check_every = iterations, float(lr), check_every
        self.channels, self.layers = channels, layers
        self.last_stop: list[int] = []  # the iterate returned, per problem, of the last call

    def forward(self, y: Tensor, physics: Physics, seeds=None, **kwargs) -> Tensor:
        check_measurements(y, physics, self.image_shape)
        physics = _linear(physics, "dip")
        seeds = list(range(len(y))) if seeds is None else list(seeds)
        if len(seeds) != len(y):
            raise ConfigError(f"dip needs one seed per problem ({len(y)}), got {len(seeds)}")
        if len(y) == 1:  # a lone problem beside a copy of itself: see solve.rowwise
            x = self.forward(torch.cat([y, y]), physics, seeds * 2)
            self.last_stop = self.last_stop[:1]
            return x[:1]
        with torch.no_grad():
            shape = tuple(physics.A_adjoint(y).shape[1:])  # (C, H, W)
        sigmas = torch.tensor(noise_std(physics, y, "dip"), dtype=y.dtype, device=y.device)
        known = sigmas > 0  # (B,): discrepancy principle; else held-out entries
        keep = torch.ones_like(y)
        for b, seed in enumerate(seeds):
            if not known[b]:
                rng = torch.Generator().manual_seed(stream_seed(seed, DIP_HELD_OUT_STREAM))
                draw = torch.rand(y.shape[1:], generator=rng).to(y.device)
                keep[b] = (draw >= DIP_HELD_OUT_FRACTION).to(y.dtype)
        net, params, buffers, z = self._networks(shape, seeds, y.device)
        forward = vmap(lambda p, b, zi: functional_call(net, (p, b), (zi[None],))[0])
        optimizer = torch.optim.Adam(params.values(), lr=self.lr)
        best = torch.full((len(y),), math.inf, device=y.device)
        result = torch.zeros(len(y), *shape, device=y.device)
        stop = torch.zeros(len(y), dtype=torch.long)
        done = torch.zeros(len(y), dtype=torch.bool, device=y.device)
        rows = torch.arange(len(y), device=y.device)  # problems still fitted, (N,)
        m = y[0].numel()
        with torch.enable_grad():
            for step in range(1, self.iterations + 1):
                x = forward(params, buffers, z)  # (N, C, H, W)
                error = (physics.A(x) - y[rows]).square()  # (N, ...)
                loss = (error * keep[rows]).flatten(1).sum(1)  # (N,)
                if step == 1 or step % self.check_every == 0 or step == self.iterations:
                    with torch.no_grad():
                        held = 1 - keep[rows]
                        score = torch.where(
                            known[rows],
                            (error.flatten(1).sum(1) / m - sigmas[rows].square()).clamp(min=0),
                            (error * held).flatten(1).sum(1) / held.flatten(1).sum(1).clamp(min=1),
                        )
                        better = ~done[rows] & (score < best[rows])
                        best[rows] = torch.where(better, score, best[rows])
                        result[rows[better]] = x.detach()[better].clamp(0, 1)
                        stop[rows[better].cpu()] = step
                        done[rows] |= known[rows] & (best[rows] <= 0)  # at the noise level
                    if bool(done.all()):
                        break
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimizer.step()
                stay = _still_fitted(done[rows])
                if not bool(stay.all()):
                    rows, z = rows[stay], z[stay]
                    buffers = {k: v[stay] for k, v in buffers.items()}
                    params, optimizer = _drop_rows(params, optimizer, stay, self.lr)
        self.last_stop = stop.tolist()
        return result

    def _networks(self, shape: tuple[int, int, int], seeds: list[int], device):
        """(functional network, stacked per-problem weights, buffers, inputs (B, channels, 4, 4))
        drawn from each problem's seed."""
        nets, inputs = [], []
        for seed in seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(stream_seed(seed, DIP_STREAM))
                net = ConvDecoder(shape, in_size=(4, 4), layers=self.layers, channels=self.channels)
                inputs.append(0.1 * torch.rand(self.channels, 4, 4))
            replace_all_batch_norm_modules_(net)  # batch statistics of the one image, no state
            nets.append(net.to(device))
        params, buffers = stack_module_state(nets)
        base = copy.deepcopy(nets[0]).to("meta")
        return base, params, buffers, torch.stack(inputs).to(device)


def _still_fitted(done: Tensor) -> Tensor:
    """(N,) bool: the rows that stay in the batch. Stopped rows leave it, but never down to one
    row: vmap computes a batch of one differently (see solve.rowwise), so a stopped row stays
    beside the last running one (its result is no longer updated)."""
    stay = ~done
    if int(stay.sum()) == 1 and len(stay) > 1:
        stay = stay.clone()
        stay[int(done.nonzero()[0])] = True
    return stay


def _drop_rows(params: dict, optimizer: torch.optim.Adam, stay: Tensor, lr: float):
    """The stacked weights (N, ...) and their Adam state restricted to the rows ``stay``: Adam is
    element-wise, so the kept rows go on exactly as they would have."""
    kept = {k: v.detach()[stay].clone().requires_grad_() for k, v in params.items()}
    new = torch.optim.Adam(kept.values(), lr=lr)
    for old_p, new_p in zip(params.values(), kept.values()):
        state = optimizer.state.get(old_p)
        if state:
            new.state[new_p] = {k: v if k == "step" else v[stay].clone() for k, v in state.items()}
    return kept, new
