"""GAN-prior reconstructors that search the generator's latent space, all on the one engine of
:mod:`generative_encoder.solve`; plus the autoencoder baseline.

- ``ge``: the Generative Encoder, ||E(S(G(z))) - E(x_dagger)||^2 + lambda ||z||^2, where
  x_dagger = lift(y) is the observation brought to G's size and S = match (the same mask, the
  same resampling); for encoder sensing the code y itself is the target.
- ``csgm``: Bora et al.'s image-domain fit ||A(G(z)) - y||^2 + lambda ||z||^2 (the GE papers'
  "GA" / "invertGAN").
- ``autoencoder``: decoder(E(x_dagger)), the journal's ConvAE row.

``ge`` and ``autoencoder`` take ``encoder=``: which encoder (and decoder) of the model folder,
one of :data:`ENCODERS`. ``ge0`` and ``aegan`` are ``ge`` with ``encoder="ge0"`` and
``autoencoder`` with ``encoder="aegan"`` under their own names, the journal's rows: a benchmark
spec keys its options by method name, so GE0 beside GE1 (or AEGAN beside ConvAE) in one table
needs two names.

Every method is called as ``method(y, physics) -> x_hat (B, C, H, W)`` in [0, 1] and never sees
the clean image; ``method.solve(y, physics)`` returns the whole search result (objectives,
history, every restart).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from deepinv.models import Reconstructor
from deepinv.physics import Blur, Inpainting, Physics
from torch import Tensor

from ..checkpoints import ModelBundle
from ..diagnostics import noise_sigma, residual
from ..errors import ConfigError
from ..physics import EncoderSensing, lift, match
from ..registry import check_arguments
from ..solve import (LossFn, SearchResult, SolveConfig, combine, encoder_fidelity,
                     expand_targets, image_fidelity, latent_l2, latent_search, rowwise)
from .registry import METHODS

# lambda of the latent prior, per method. The data terms are sums over code / measurement dims,
# so the weights differ. GE's and CSGM's are the best mean PSNR over four tasks on 32 TRAINING
# digits (experiments/lambda_sweep.py; never the test digits).
DEFAULT_LATENT_WEIGHT = {"ge": 1e-1, "ge0": 1e-1, "csgm": 1e-3}  # ge0: GE's, not swept

# encoder=...: the (encoder, decoder) networks of each family in a model folder. GE0 is the
# encoder half of a BEGAN discriminator (an autoencoder), so it lives inside `discriminator`.
ENCODERS = {"ge1": ("encoder", "decoder"), "vae": ("vae_encoder", "vae_decoder"),
            "aegan": ("aegan_encoder", "aegan_decoder"), "ge0": None}

# latent_weight="auto": lambda from the measurements alone, per problem, among these multiples of
# the default, all solved in one batch (L x B problems). With Gaussian noise of known sigma, the
# discrepancy principle: for each problem, the largest lambda whose residual ratio is
# <= DISCREPANCY_TAU x max(1, its smallest ratio over the grid) (the max: an image outside G's range
# leaves more than the noise at every lambda). Without (inpainting, noise-free tasks):
# HELD_OUT_FRACTION of the measured entries (seeded, HELD_OUT_SEED) are hidden from the fit, and the
# lambda that predicts a problem's hidden entries best wins; the final solve uses every measurement.
# Each problem's choice reads its own rows only, so it is the same alone or in any batch.
AUTO_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
DISCREPANCY_TAU = 1.1
HELD_OUT_FRACTION = 0.1
HELD_OUT_SEED = 0


@dataclass
class AutoWeight:
    """How ``latent_weight="auto"`` chose: rule ("discrepancy" or "held_out"), the lambdas tried
    (L,), each problem's score of each (B lists of L: discrepancy ratio, or mean held-out squared
    error), and each problem's chosen lambda (B,)."""

    rule: str
    grid: list[float]
    scores: list[list[float]]
    chosen: list[float]


class LatentSearch(Reconstructor):
    """Base of the latent-search methods: builds a per-row loss, runs the engine, returns G(z*).

    model: a :class:`~generative_encoder.checkpoints.ModelBundle` with at least a generator.
    config: the engine's settings (steps, lr, restarts, ...), the GE paper's by default.
    latent_weight: lambda of the prior lambda ||z||^2; None takes the method's default; "auto"
        chooses it per call from the measurements (see ``AUTO_GRID``; ``last_auto`` says how).
    """

    name = "latent"
    needs: tuple[str, ...] = ("generator",)  # networks the model folder must hold

    def __init__(self, model: ModelBundle, config: SolveConfig | None = None,
                 latent_weight: float | str | None = None, **config_overrides):
        super().__init__()
        model.require(*self.needs)
        options = set(SolveConfig.__dataclass_fields__)
        unknown = sorted(set(config_overrides) - options)
        if unknown:
            raise ConfigError(f"method {self.name!r} has no option {unknown}; options: "
                              f"{sorted(options | {'latent_weight'})}")
        check_arguments(SolveConfig, f"method {self.name!r}", **config_overrides)
        self.model = model
        self.config = replace(config or SolveConfig(), **config_overrides)
        if isinstance(latent_weight, str) and latent_weight != "auto":
            raise ConfigError(f"latent_weight must be a number >= 0 or 'auto', got "
                              f"{latent_weight!r}")
        self.latent_weight = (DEFAULT_LATENT_WEIGHT[self.name] if latent_weight is None
                              else latent_weight)
        if self.latent_weight != "auto" and self.latent_weight < 0:
            raise ConfigError(f"latent_weight must be >= 0, got {self.latent_weight}")
        self.last_auto: AutoWeight | None = None

    def data_term(self, y: Tensor, physics: Physics, restarts: int) -> tuple[LossFn, list]:
        """The measurement term as a per-row loss, and the networks it runs (to be frozen)."""
        raise NotImplementedError

    def solve(self, y: Tensor, physics: Physics, *, seeds=None, init: Tensor | None = None,
              on_step=None) -> SearchResult:
        """Run the latent search for a batch of measurements y (B, ...); the result's ``x`` is
        the method's output, every step after the search (``finish``) applied."""
        y = y.detach()
        self.check_physics(physics)
        if self.latent_weight == "auto":
            result = self._solve_auto(y, physics, seeds, init, on_step)
        else:
            result = self._search(y, physics, self.latent_weight, seeds, init, on_step)
        return replace(result, x=self.finish(result, y, physics).detach())

    def check_physics(self, physics: Physics) -> None:
        """Raise ConfigError before any work when the method cannot handle ``physics``."""

    def finish(self, result: SearchResult, y: Tensor, physics: Physics) -> Tensor:
        """The output (B, C, H, W) from the search: G(z*) itself here; methods with a last step
        (Yeh's blend, LVR-SA's shift) override it."""
        return result.x

    def _search(self, y: Tensor, physics: Physics, weight: float | Tensor, seeds=None,
                init: Tensor | None = None, on_step=None) -> SearchResult:
        """The engine on y (B, ...); weight: lambda, or one per row (B*R,)."""
        data, networks = self.data_term(y, physics, self.config.restarts)
        loss = combine(data, _prior(weight))
        return latent_search(self.model.generator, loss, y.shape[0], self.config,
                             networks=networks, seeds=seeds, init=init, on_step=on_step)

    def _solve_auto(self, y: Tensor, physics: Physics, seeds, init, on_step) -> SearchResult:
        """latent_weight="auto": every lambda of the grid in one batch, then the rule, per
        problem."""
        if self.name not in DEFAULT_LATENT_WEIGHT:
            raise ConfigError(f"latent_weight='auto' is for {', '.join(DEFAULT_LATENT_WEIGHT)}, "
                              f"not {self.name!r}")
        b, restarts = y.shape[0], self.config.restarts
        grid = [DEFAULT_LATENT_WEIGHT[self.name] * g for g in AUTO_GRID]
        seeds = list(range(self.config.seed, self.config.seed + b)) if seeds is None \
            else list(seeds)
        weights = torch.tensor(grid, device=y.device).repeat_interleave(b * restarts)
        rep = len(grid)
        init_rep = None if init is None else init.repeat(rep, *[1] * (init.dim() - 1))
        y_rep = y.repeat(rep, *[1] * (y.dim() - 1))                               # (L*B, ...)
        sigma = noise_sigma(physics)
        if sigma is not None:  # discrepancy principle; the chosen lambda's rows are the answer
            result = self._search(y_rep, physics, weights, seeds * rep, init_rep, on_step)
            ratios = (residual(y_rep, physics, result.x) / (y[0].numel() * sigma ** 2)
                      ).view(rep, b)                                            # (L, B)
            target = DISCREPANCY_TAU * ratios.min(0).values.clamp_min(1.0)      # (B,)
            ok = ratios <= target                                               # (L, B)
            levels = torch.arange(rep, device=y.device)[:, None].expand(rep, b)
            best = torch.where(ok, levels, -1).max(0).values                    # (B,)
            best = torch.where(best < 0, ratios.argmin(0), best)
            self.last_auto = AutoWeight("discrepancy", grid, ratios.T.tolist(),
                                        [grid[i] for i in best.tolist()])
            return _take(result, best * b + torch.arange(b, device=y.device))
        fit_physics, y_fit, held = self._held_out_split(y, physics)
        result = self._search(y_fit.repeat(rep, *[1] * (y.dim() - 1)), fit_physics, weights,
                              seeds * rep, init_rep, None)
        with torch.no_grad():
            miss = (physics.A(result.x) - y_rep) * held
            errors = (miss.flatten(1).square().sum(1) / held.sum()).view(rep, b)  # (L, B)
        # ties go to the larger lambda: the last index of the minimum
        best = rep - 1 - errors.flip(0).argmin(0)                                  # (B,)
        chosen = [grid[i] for i in best.tolist()]
        self.last_auto = AutoWeight("held_out", grid, errors.T.tolist(), chosen)
        weight = torch.tensor(chosen, device=y.device).repeat_interleave(restarts)  # (B*R,)
        return self._search(y, physics, weight, seeds, init, on_step)

    def _held_out_split(self, y: Tensor, physics: Physics) -> tuple[Physics, Tensor, Tensor]:
        """(physics of the fit, y of the fit, held-out indicator broadcastable to y): a seeded
        HELD_OUT_FRACTION of the measured entries is hidden from the fit."""
        rng = torch.Generator().manual_seed(HELD_OUT_SEED)
        if isinstance(physics, Inpainting):
            mask = physics.mask.detach()                                       # (1, 1|C, H, W)
            draw = torch.rand(mask.shape, generator=rng).to(mask.device)
            held = (draw < HELD_OUT_FRACTION).to(mask.dtype) * mask
            fit = Inpainting(tuple(y.shape[1:]), mask=(mask - held)[0], device=mask.device)
            return fit, y * (1 - held), held
        if self.name == "csgm":  # CSGM's data term reads A only: hide entries of A(x) and y
            draw = torch.rand(y.shape[1:], generator=rng).to(y.device)
            held = (draw < HELD_OUT_FRACTION).to(y.dtype)[None]                # (1, ...)
            return _Masked(physics, 1 - held), y * (1 - held), held
        raise ConfigError(f"latent_weight='auto' with {self.name} needs a known noise level "
                          f"(sigma > 0) or an inpainting task; {type(physics).__name__} has "
                          "neither")

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        """``solve(y, physics).x``: the one path of every latent method."""
        return self.solve(y, physics, **kwargs).x


class _Masked(Physics):
    """A(x) = keep * inner.A(x): a physics with some measurement entries hidden."""

    def __init__(self, inner: Physics, keep: Tensor):
        super().__init__()
        self.inner, self.keep = inner, keep

    def A(self, x: Tensor, **kwargs) -> Tensor:
        return self.inner.A(x) * self.keep


def _prior(weight: float | Tensor):
    """lambda ||z||^2 per row; weight a float or one per row (N,)."""
    if isinstance(weight, Tensor):
        return lambda x, z: weight.to(z.dtype) * z.square().sum(1)
    return latent_l2(weight)


def _take(result: SearchResult, rows: Tensor) -> SearchResult:
    """The problems ``rows`` (an index tensor) of a search result, in that order."""
    return replace(
        result, z=result.z[rows], x=result.x[rows], objective=result.objective[rows],
        restart_z=result.restart_z[rows], restart_objective=result.restart_objective[rows],
        history=result.history[:, rows], steps_run=result.steps_run[rows],
        snapshots=None if result.snapshots is None else result.snapshots[:, rows])


def select_autoencoder(model: ModelBundle, encoder: str, with_decoder: bool = False
                       ) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """(encoder, decoder or None) of the family ``encoder`` (see :data:`ENCODERS`): "ge1" the
    conv autoencoder, "ge0" BEGAN's discriminator halves, "vae" (E = the posterior mean),
    "aegan" the adversarially trained autoencoder. with_decoder: the decoder must be there too."""
    if encoder not in ENCODERS:
        raise ConfigError(f"encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
    if encoder == "ge0":
        model.require("discriminator")
        disc = model.discriminator
        if getattr(disc, "arch", None) != "began_discriminator":
            raise ConfigError("encoder='ge0' is the encoder of a BEGAN discriminator (genc train "
                              f"gan --arch began); this model's discriminator is "
                              f"{getattr(disc, 'arch', type(disc).__name__)!r}")
        return disc.encoder, disc.decoder
    enc_name, dec_name = ENCODERS[encoder]
    model.require(enc_name, *([dec_name] if with_decoder else []))
    return model.network(enc_name), model.network(dec_name)


def _encoder_target(encoder: torch.nn.Module, y: Tensor, physics: Physics, blind: bool = False):
    """(encoder, S, target code (B, m)) of GE for this physics; ``blind``: S = identity for
    deblurring (the preprint's setting) instead of the known blur."""
    if isinstance(physics, EncoderSensing):
        if physics.encoder is not encoder:  # another family's code: matching it is meaningless
            raise ConfigError("this encoder_cs measurement is the code of another encoder than "
                              "the method's; measure with the method's own family (the task's "
                              "encoder: ge1, ge0, vae or aegan)")
        return physics.encoder, (lambda x: x), y
    with torch.no_grad():
        target = rowwise(encoder, lift(y, physics))
    if blind and isinstance(physics, Blur):
        return encoder, (lambda x: x), target
    return encoder, (lambda x: match(x, physics)), target


@METHODS.register("ge")
class GenerativeEncoder(LatentSearch):
    """GE: z* = argmin ||E(S(G(z))) - E(x_dagger)||^2 + lambda ||z||^2, x_hat = G(z*).

    encoder: "ge1" (the separately trained conv autoencoder's, default), "ge0" (BEGAN's
    discriminator's), "vae" or "aegan" (see :data:`ENCODERS`). blind: for deblurring, S =
    identity (the preprint: the code of a sharp G(z) is matched to that of the blurred image, the
    kernel unused) instead of S = the known blur (the default)."""

    name = "ge"

    def __init__(self, model: ModelBundle, config: SolveConfig | None = None,
                 latent_weight: float | str | None = None, encoder: str = "ge1",
                 blind: bool = False, **config_overrides):
        super().__init__(model, config, latent_weight, **config_overrides)
        select_autoencoder(model, encoder)  # fails now, not at the first call
        self.encoder_kind, self.blind = encoder, bool(blind)

    def check_physics(self, physics: Physics) -> None:
        if self.blind and not isinstance(physics, Blur):
            raise ConfigError(f"blind=True applies to deblurring only, got "
                              f"{type(physics).__name__}")

    def data_term(self, y, physics, restarts):
        own, _ = select_autoencoder(self.model, self.encoder_kind)
        encoder, s, target = _encoder_target(own, y, physics, self.blind)
        return encoder_fidelity(encoder, s, expand_targets(target, restarts)), [encoder]


@METHODS.register("ge0")
class GE0(GenerativeEncoder):
    """GE with E = the encoder half of BEGAN's discriminator (the journal's GE0)."""

    name = "ge0"

    def __init__(self, model: ModelBundle, config: SolveConfig | None = None,
                 latent_weight: float | str | None = None, blind: bool = False,
                 **config_overrides):
        super().__init__(model, config, latent_weight, encoder="ge0", blind=blind,
                         **config_overrides)


@METHODS.register("csgm")
class CSGM(LatentSearch):
    """CSGM / invertGAN: z* = argmin ||A(G(z)) - y||^2 + lambda ||z||^2, x_hat = G(z*)."""

    name = "csgm"

    def data_term(self, y, physics, restarts):
        return image_fidelity(physics.A, expand_targets(y, restarts)), []


@METHODS.register("autoencoder")
class AutoEncoderBaseline(Reconstructor):
    """ConvAE: x_hat = decoder(E(x_dagger)); for encoder sensing, decoder(y). ``encoder``
    picks the autoencoder (see :data:`ENCODERS`; "ge0": BEGAN's discriminator itself)."""

    def __init__(self, model: ModelBundle, encoder: str = "ge1"):
        super().__init__()
        select_autoencoder(model, encoder, with_decoder=True)  # fails now, not at the first call
        self.model, self.encoder_kind = model, encoder

    @torch.no_grad()
    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        encoder, decoder = select_autoencoder(self.model, self.encoder_kind)
        _, _, code = _encoder_target(encoder, y, physics)
        return rowwise(decoder, code).clamp(0, 1)  # BEGAN's decoder (GE0) is linear


@METHODS.register("aegan")
class AEGANBaseline(AutoEncoderBaseline):
    """AEGAN (the journal's Table 2): an autoencoder trained with an adversarial loss on its
    reconstructions (``genc train encoder --kind aegan``), x_hat = decoder(E(x_dagger))."""

    def __init__(self, model: ModelBundle):
        super().__init__(model, encoder="aegan")
