"""GAN-prior reconstructors that search the generator's latent space, all on the one engine of
:mod:`generative_encoder.solve`; plus the autoencoder baseline.

- ``ge``: the Generative Encoder, ||E(S(G(z))) - E(x_dagger)||^2 + lambda ||z||^2, where
  x_dagger = lift(y) is the observation brought to G's size and S = match (the same mask, the
  same resampling); for encoder sensing the code y itself is the target.
- ``csgm``: Bora et al.'s image-domain fit ||A(G(z)) - y||^2 + lambda ||z||^2 (the GE papers'
  "GA" / "invertGAN").
- ``autoencoder``: decoder(E(x_dagger)), the journal's ConvAE row.

Every latent method but ``lvr_sa`` takes ``adapt_steps`` > 0 to fine-tune, after the search, a
copy of the generator per problem jointly with z* on the same objective
(:mod:`~generative_encoder.solve.adapt`), the step count chosen without the clean image: by the
discrepancy principle when the Gaussian noise std is known, else on a seeded tenth of the
measured entries held out from the adaptation.

``ge`` and ``csgm`` (every latent method but ``lvr_sa``) take ``ilo_steps`` > 0 instead for
Intermediate Layer Optimization (:mod:`~generative_encoder.solve.ilo`): after the search, an
intermediate activation of G is moved within an l1 ball around G_before(z*) on the same
objective, its step count chosen by the same rules. The two cannot be combined.

``ge`` and ``autoencoder`` take ``encoder=``: which encoder (and decoder) of the model folder,
one of :mod:`~generative_encoder.models.families`. ``ge0`` and ``aegan`` are ``ge`` with
``encoder="ge0"`` and
``autoencoder`` with ``encoder="aegan"`` under their own names, the journal's rows: a benchmark
spec keys its options by method name, so GE0 beside GE1 (or AEGAN beside ConvAE) in one table
needs two names.

Every method is called as ``method(y, physics) -> x_hat (B, C, H, W)`` in [0, 1] and never sees
the clean image; ``method.solve(y, physics)`` returns the whole search result (objectives,
history, every restart).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from deepinv.models import Reconstructor
from deepinv.physics import Blur, Inpainting, Physics
from torch import Tensor

from ..errors import ConfigError
from ..io.checkpoints import ModelBundle
from ..models.families import family
from ..physics import EncoderSensing, check_measurements, lift, match
from ..physics.consistency import check_consistency, make_consistent
from ..physics.noise import noise_sigma
from ..physics.seeds import member_seed
from ..registry import check_arguments
from ..solve import (
    LossFn,
    SearchResult,
    SolveConfig,
    combine,
    encoder_fidelity,
    expand_targets,
    image_fidelity,
    latent_l2,
    latent_search,
    rowwise,
)
from ..solve.adapt import (
    AdaptConfig,
    adapt_generator,
    adapted_names,
    discrepancy_score,
    held_out_score,
)
from ..solve.engine import problem_seeds, take_problems
from ..solve.ilo import ILOConfig, optimize_intermediate, split_generator
from ..solve.weight import AutoWeight, choose_weight, held_out_split
from .registry import METHODS


class LatentSearch(Reconstructor):
    """Base of the latent-search methods: builds a per-row loss, runs the engine, returns G(z*).

    model: a :class:`~generative_encoder.io.checkpoints.ModelBundle` with at least a generator.
    config: the engine's settings (steps, lr, restarts, ...), the GE paper's by default.
    latent_weight: lambda of the prior lambda ||z||^2; None takes the method's
        ``default_latent_weight``; "auto" chooses it per problem from the measurements
        (:mod:`~generative_encoder.solve.weight`; ``last_auto`` says how), for the methods that
        have a default.
    start (``ge`` and ``csgm``): where the search starts: "prior" (every restart drawn from the
        latent prior), "amortized" (one start, R(E(x_dagger)) of the model's latent regressor:
        amortized GE), "amortized+prior" (restart 0 from R, the others from the prior).
    adapt_steps: 0 (off, the default) or the most Adam steps of per-problem generator adaptation
        after the search (see the module); adapt_lr: its learning rate (weights and z);
        adapt_layers: the last k layers with parameters (3 by default), or None (every layer);
        adapt_check_every: steps between its stopping checks. ``solve(...).adapt_steps`` says
        which step each problem kept.
    ilo_steps: 0 (off, the default) or the most Adam steps of Intermediate Layer Optimization
        after the search; ilo_layer: the split point (the input of the k-th transposed
        convolution of a DCGAN generator, k >= 1, or counted from the end if negative; -2 by
        default); ilo_radius: the l1 ball's radius as a mean
        per element of the activation; ilo_lr: its learning rate; ilo_check_every: steps
        between its stopping checks. Not with ``adapt_steps``. ``solve(...).ilo_steps`` says
        which step each problem kept.
    ensemble: K >= 1 independent solves per problem (1, the default: one), each with its own
        random starts (member 0's are the problem's own, the others' drawn from streams of its
        seed) and every step after the search; the output is their pixel-wise mean, an
        estimate of the posterior mean where one solve is a draw near a mode, and
        ``solve(...).members`` keeps each (their spread is a per-pixel uncertainty). K times
        the cost, all K in one batch; ``last_auto`` then holds one entry per member (problem
        b's at b*K .. b*K + K-1).
    """

    name = "latent"
    needs: tuple[str, ...] = ("generator",)  # networks the model folder must hold
    # lambda of the prior ||z||^2. The data terms are sums over code / measurement dims, so the
    # weights differ per method; None: no default, and no "auto".
    default_latent_weight: float | None = None
    hides_any_measurement = False  # "auto" may hold out entries of any measurement (A(x) only)
    amortizable = False  # whether ``start`` may be amortized (the method has an encoder to use)
    start_encoder = "ge1"  # the encoder family whose regressor makes the amortized start

    def __init__(
        self,
        model: ModelBundle,
        config: SolveConfig | None = None,
        latent_weight: float | str | None = None,
        **config_overrides,
    ):
        super().__init__()
        model.require(*self.needs)
        self.consistency = config_overrides.pop("consistency", "auto")
        check_consistency(self.consistency)
        self.start = config_overrides.pop("start", "prior")
        if self.start not in STARTS:
            raise ConfigError(f"start must be one of {', '.join(STARTS)}, got {self.start!r}")
        self.ensemble = k = config_overrides.pop("ensemble", 1)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"ensemble must be an integer >= 1, got {k!r}")
        if self.ensemble > 1 and self.start == "amortized":
            raise ConfigError(  # one deterministic start: every member would be the same
                "ensemble > 1 needs random starts; start='amortized' has one "
                "(use 'amortized+prior')"
            )
        if self.start != "prior" and not self.amortizable:
            raise ConfigError(f"method {self.name!r} has no amortized start (ge and csgm have)")
        self.adapt = AdaptConfig(
            **{
                key: config_overrides.pop(f"adapt_{key}")
                for key in AdaptConfig.__dataclass_fields__
                if f"adapt_{key}" in config_overrides
            }
        )
        if self.adapt.steps:
            if type(self).finish is not LatentSearch.finish:
                raise ConfigError(  # its last step regenerates from z with the unadapted G
                    f"method {self.name!r} has no generator adaptation (adapt_steps)"
                )
            adapted_names(model.generator, self.adapt.layers)  # fails now, not at the first call
        self.ilo = ILOConfig(
            **{
                key: config_overrides.pop(f"ilo_{key}")
                for key in ILOConfig.__dataclass_fields__
                if f"ilo_{key}" in config_overrides
            }
        )
        if self.ilo.steps:
            if self.adapt.steps:
                raise ConfigError("ilo_steps and adapt_steps cannot both be > 0; choose one")
            if type(self).finish is not LatentSearch.finish:
                raise ConfigError(  # its last step regenerates from z, dropping the new layer
                    f"method {self.name!r} has no intermediate layer optimization (ilo_steps)"
                )
            split_generator(model.generator, self.ilo.layer)  # fails now, not at the first call
        options = set(SolveConfig.__dataclass_fields__)
        unknown = sorted(set(config_overrides) - options)
        if unknown:
            raise ConfigError(
                f"method {self.name!r} has no option {unknown}; options: "
                f"{sorted(options | METHOD_OPTIONS | EXTRA_OPTIONS)}"
            )
        check_arguments(SolveConfig, f"method {self.name!r}", **config_overrides)
        self.model = model
        self.config = replace(config or SolveConfig(), **config_overrides)
        if self.start == "amortized":
            if config_overrides.get("restarts", 1) != 1:
                raise ConfigError(
                    "start='amortized' runs the one start R(E(x_dagger)); "
                    "'amortized+prior' adds restarts from the prior"
                )
            self.config = replace(self.config, restarts=1)
        if self.start != "prior":
            model.require(family(self.start_encoder).regressor)
        if isinstance(latent_weight, str) and latent_weight != "auto":
            raise ConfigError(
                f"latent_weight must be a number >= 0 or 'auto', got {latent_weight!r}"
            )
        self.latent_weight = self.default_latent_weight if latent_weight is None else latent_weight
        if self.latent_weight != "auto" and self.latent_weight < 0:
            raise ConfigError(f"latent_weight must be >= 0, got {self.latent_weight}")
        self.last_auto: AutoWeight | None = None

    def data_term(self, y: Tensor, physics: Physics, restarts: int) -> tuple[LossFn, list]:
        """The measurement term as a per-row loss, and the networks it runs (to be frozen)."""
        raise NotImplementedError

    def solve(
        self, y: Tensor, physics: Physics, *, seeds=None, init: Tensor | None = None, on_step=None
    ) -> SearchResult:
        """Run the latent search for a batch of measurements y (B, ...); the result's ``x`` is
        the method's output, every step after the search (``finish``) applied.

        seeds: one start seed per problem (default ``config.seed + j``); init: warm starts
        (B, d) or (B, R, d), given to every ensemble member; on_step: the engine's callback,
        which sees B * ``ensemble`` problems."""
        check_measurements(y, physics, self.model.image_shape)
        y = y.detach()
        self.check_physics(physics)
        if self.ensemble == 1:
            return self._solve_one(y, physics, seeds, init, on_step)
        k, n = self.ensemble, len(y)
        seeds = problem_seeds(n, self.config, seeds)
        runs = self._solve_one(  # problem b's members are rows b*K .. b*K + K-1
            y.repeat_interleave(k, 0),
            physics,
            [member_seed(s, j) for s in seeds for j in range(k)],
            None if init is None else init.repeat_interleave(k, 0),
            on_step,
        )
        members = runs.x.reshape(n, k, *runs.x.shape[1:])
        return replace(
            take_problems(runs, torch.arange(n, device=runs.x.device) * k),
            x=members.mean(1),
            generated=runs.generated.reshape(members.shape).mean(1),
            members=members,
        )

    def _solve_one(self, y: Tensor, physics: Physics, seeds, init, on_step) -> SearchResult:
        """``solve`` of one member per problem."""
        if self.start != "prior" and init is None:
            init = amortized_latent(self.model, self.start_encoder, y, physics)
        if self.latent_weight == "auto":
            if self.default_latent_weight is None:
                raise ConfigError(
                    f"latent_weight='auto' is for methods with a default lambda "
                    f"(ge, ge0, csgm), not {self.name!r}"
                )
            result, self.last_auto = choose_weight(
                self._search,
                y,
                physics,
                self.default_latent_weight,
                self.config.restarts,
                problem_seeds(len(y), self.config, seeds),
                init,
                on_step,
                self.hides_any_measurement,
                self.name,
            )
            weight = torch.tensor(self.last_auto.chosen, device=y.device)
        else:
            result = self._search(y, physics, self.latent_weight, seeds, init, on_step)
            weight = self.latent_weight
        return self._after_search(result, y, physics, weight)

    def refine(self, search: SearchResult, y: Tensor, physics: Physics) -> SearchResult:
        """The steps after the search (adaptation, ILO, the consistency step) of this method,
        applied to ``search``: a finished ``solve`` of the same search (same model, objective,
        steps and seeds) on y (B, ...), so that settings of those steps can be compared
        without searching again. Equals ``solve(y, physics)`` with the same seeds; not with
        ``latent_weight="auto"`` or ``ensemble`` > 1, whose searches it cannot take apart."""
        if self.latent_weight == "auto" or self.ensemble > 1:
            raise ConfigError("refine needs a fixed latent_weight and ensemble=1")
        check_measurements(y, physics, self.model.image_shape)
        self.check_physics(physics)
        if search.generated is None or search.members is not None:
            raise ConfigError("refine needs the result of a finished solve with ensemble=1")
        if search.adapt_steps is not None or search.ilo_steps is not None:
            raise ConfigError("refine needs a solve without adaptation or ILO steps")
        searched = replace(search, x=search.generated, generated=None)  # G(z*), as searched
        return self._after_search(searched, y.detach(), physics, self.latent_weight)

    def _after_search(
        self, result: SearchResult, y: Tensor, physics: Physics, weight: float | Tensor
    ) -> SearchResult:
        """Adaptation or ILO, then the consistency step, on the search's result for y."""
        if self.adapt.steps:
            result = self._adapt(result, y, physics, weight)
        if self.ilo.steps:
            result = self._ilo(result, y, physics, weight)
        return replace(result, x=self.finish(result, y, physics).detach(), generated=result.x)

    def check_physics(self, physics: Physics) -> None:
        """Raise ConfigError before any work when the method cannot handle ``physics``."""
        check_consistency(self.consistency, physics)

    def finish(self, result: SearchResult, y: Tensor, physics: Physics) -> Tensor:
        """The output (B, C, H, W) from the search: G(z*) made consistent with y as the
        ``consistency`` option says (:mod:`~generative_encoder.physics.consistency`); LVR-SA
        shifts z* first."""
        return make_consistent(result.x, y, physics, self.consistency)

    def _search(
        self,
        y: Tensor,
        physics: Physics,
        weight: float | Tensor,
        seeds=None,
        init: Tensor | None = None,
        on_step=None,
    ) -> SearchResult:
        """The engine on y (B, ...); weight: lambda, or one per row (B*R,)."""
        data, networks = self.data_term(y, physics, self.config.restarts)
        loss = combine(data, _prior(weight))
        return latent_search(
            self.model.generator,
            loss,
            y.shape[0],
            self.config,
            networks=networks,
            seeds=seeds,
            init=init,
            on_step=on_step,
        )

    def _adapt(
        self, result: SearchResult, y: Tensor, physics: Physics, weight: float | Tensor
    ) -> SearchResult:
        """The search's answer for y (B, ...) adapted (see the module); weight: lambda, or one
        per problem (B,)."""
        if len(y) == 1:
            return _beside_a_copy(self._adapt, result, y, physics, weight)
        loss, networks, score, stops = self._refit(result, y, physics, weight)
        adapted = adapt_generator(
            self.model.generator,
            loss,
            result.z,
            result.x,
            score,
            stops,
            self.adapt,
            networks=networks,
            clip=self.config.clip is not None,
        )
        return replace(
            result,
            z=adapted.z,
            x=adapted.x,
            objective=adapted.objective,
            adapt_steps=adapted.step,
        )

    def _ilo(
        self, result: SearchResult, y: Tensor, physics: Physics, weight: float | Tensor
    ) -> SearchResult:
        """The search's answer for y (B, ...) refined by Intermediate Layer Optimization (see
        :mod:`~generative_encoder.solve.ilo`); weight: lambda, or one per problem (B,)."""
        if len(y) == 1:
            return _beside_a_copy(self._ilo, result, y, physics, weight)
        loss, networks, score, stops = self._refit(result, y, physics, weight)
        found = optimize_intermediate(
            self.model.generator,
            loss,
            result.z,
            result.x,
            score,
            stops,
            self.ilo,
            networks=networks,
        )
        return replace(result, x=found.x, objective=found.objective, ilo_steps=found.step)

    def _refit(self, result: SearchResult, y: Tensor, physics: Physics, weight: float | Tensor):
        """(per-row loss, its networks, score, stops) of a step after the search on y (B, ...):
        the discrepancy principle when the Gaussian noise std is known (stops), else the
        held-out error of a seeded tenth of the measured entries hidden from the loss."""
        sigma = noise_sigma(physics)
        if sigma is not None:
            fit_physics, y_fit = physics, y
            score = discrepancy_score(y, physics.A, sigma)
        else:
            fit_physics, y_fit, held = self._held_out(y, physics, result.x)
            score = held_out_score(y, physics.A, held)
        data, networks = self.data_term(y_fit, fit_physics, 1)
        return combine(data, _prior(weight)), networks, score, sigma is not None

    def _held_out(self, y: Tensor, physics: Physics, x: Tensor) -> tuple[Physics, Tensor, Tensor]:
        """(physics, y, held-out indicator) of a step after the search (adaptation, ILO) when
        the noise is unknown: a seeded tenth of the measured entries hidden from the fit; where
        the data term cannot hide entries (GE away from inpainting), they are replaced by A(x)
        of the search's answer x (B, C, H, W)."""
        if isinstance(physics, Inpainting) or self.hides_any_measurement:
            return held_out_split(y, physics, self.hides_any_measurement, self.name)
        _, _, held = held_out_split(y, physics, True, self.name)
        with torch.no_grad():
            predicted = physics.A(x)
        return physics, y * (1 - held) + predicted * held, held

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        """``solve(y, physics).x``: the one path of every latent method."""
        return self.solve(y, physics, **kwargs).x


def _beside_a_copy(refine, result: SearchResult, y: Tensor, physics: Physics, weight):
    """``refine(result, y, physics, weight)`` of a lone problem (y (1, ...)) run beside a copy
    of itself: a batch of one takes other code paths, which round differently (solve.rowwise)."""
    pair = torch.tensor([0, 0], device=result.z.device)
    if isinstance(weight, Tensor):
        weight = weight[pair.to(weight.device)]
    twice = refine(take_problems(result, pair), torch.cat([y, y]), physics, weight)
    return take_problems(twice, pair[:1])


STARTS = ("prior", "amortized", "amortized+prior")
ADAPT_OPTIONS = {f"adapt_{key}" for key in AdaptConfig.__dataclass_fields__}
ILO_OPTIONS = {f"ilo_{key}" for key in ILOConfig.__dataclass_fields__}
EXTRA_OPTIONS = ADAPT_OPTIONS | ILO_OPTIONS
METHOD_OPTIONS = {"latent_weight", "consistency", "start", "ensemble"}  # beside SolveConfig's


@torch.no_grad()
def amortized_latent(model: ModelBundle, encoder: str, y: Tensor, physics: Physics) -> Tensor:
    """R(E(x_dagger)) (B, d): the latent regressor of the family ``encoder`` on the code of the
    lifted observation (for encoder sensing, of the code y itself)."""
    own, _ = select_autoencoder(model, encoder)
    _, _, code = _encoder_target(own, y, physics)
    regressor = model.network(family(encoder).regressor)
    return rowwise(regressor, code)


def _prior(weight: float | Tensor):
    """lambda ||z||^2 per row; weight a float or one per row (N,)."""
    if isinstance(weight, Tensor):
        return lambda x, z: weight.to(z.dtype) * z.square().sum(1)
    return latent_l2(weight)


def select_autoencoder(
    model: ModelBundle, encoder: str, with_decoder: bool = False
) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """(encoder, decoder or None) of the encoder family ``encoder`` of the model
    (:mod:`~generative_encoder.models.families`; "ge0": BEGAN's discriminator halves).
    with_decoder: the decoder must be there too."""
    chosen = family(encoder)
    if chosen.encoder is None:
        model.require("discriminator")
        disc = model.discriminator
        if getattr(disc, "arch", None) != "began_discriminator":
            raise ConfigError(
                "encoder='ge0' is the encoder of a BEGAN discriminator (genc train "
                f"gan --arch began); this model's discriminator is "
                f"{getattr(disc, 'arch', type(disc).__name__)!r}"
            )
        return disc.encoder, disc.decoder
    model.require(chosen.encoder, *([chosen.decoder] if with_decoder else []))
    return model.network(chosen.encoder), model.network(chosen.decoder)


def _encoder_target(encoder: torch.nn.Module, y: Tensor, physics: Physics, blind: bool = False):
    """(encoder, S, target code (B, m)) of GE for this physics; ``blind``: S = identity for
    deblurring (the preprint's setting) instead of the known blur."""
    if isinstance(physics, EncoderSensing):
        if physics.encoder is not encoder:  # another family's code: matching it is meaningless
            raise ConfigError(
                "this encoder_cs measurement is the code of another encoder than "
                "the method's; measure with the method's own family (the task's "
                "encoder: ge1, ge0, vae, aegan or robust)"
            )
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
    discriminator's), "vae" or "aegan" (see :mod:`~generative_encoder.models.families`). blind:
    for deblurring, S =
    identity (the preprint: the code of a sharp G(z) is matched to that of the blurred image, the
    kernel unused) instead of S = the known blur (the default)."""

    name = "ge"
    amortizable = True
    # the best mean PSNR over four tasks on 32 TRAINING digits (experiments/lambda_sweep.py)
    default_latent_weight = 1e-1

    def __init__(
        self,
        model: ModelBundle,
        config: SolveConfig | None = None,
        latent_weight: float | str | None = None,
        encoder: str = "ge1",
        blind: bool = False,
        **config_overrides,
    ):
        self.start_encoder = encoder  # before the base class checks the regressor
        super().__init__(model, config, latent_weight, **config_overrides)
        select_autoencoder(model, encoder)  # fails now, not at the first call
        self.encoder_kind, self.blind = encoder, bool(blind)

    def check_physics(self, physics: Physics) -> None:
        if self.blind and not isinstance(physics, Blur):
            raise ConfigError(
                f"blind=True applies to deblurring only, got {type(physics).__name__}"
            )

    def data_term(self, y, physics, restarts):
        own, _ = select_autoencoder(self.model, self.encoder_kind)
        encoder, s, target = _encoder_target(own, y, physics, self.blind)
        return encoder_fidelity(encoder, s, expand_targets(target, restarts)), [encoder]


@METHODS.register("ge0")
class GE0(GenerativeEncoder):
    """GE with E = the encoder half of BEGAN's discriminator (the journal's GE0)."""

    name = "ge0"

    def __init__(
        self,
        model: ModelBundle,
        config: SolveConfig | None = None,
        latent_weight: float | str | None = None,
        blind: bool = False,
        **config_overrides,
    ):
        super().__init__(
            model, config, latent_weight, encoder="ge0", blind=blind, **config_overrides
        )


@METHODS.register("csgm")
class CSGM(LatentSearch):
    """CSGM / invertGAN: z* = argmin ||A(G(z)) - y||^2 + lambda ||z||^2, x_hat = G(z*)."""

    name = "csgm"
    amortizable = True  # with the ge1 encoder's regressor
    default_latent_weight = 1e-3  # chosen as GE's (experiments/lambda_sweep.py)
    hides_any_measurement = True

    def data_term(self, y, physics, restarts):
        return image_fidelity(physics.A, expand_targets(y, restarts)), []


@METHODS.register("autoencoder")
class AutoEncoderBaseline(Reconstructor):
    """ConvAE: x_hat = decoder(E(x_dagger)); for encoder sensing, decoder(y). ``encoder``
    picks the autoencoder (see :mod:`~generative_encoder.models.families`; "ge0": BEGAN's
    discriminator itself)."""

    def __init__(self, model: ModelBundle, encoder: str = "ge1"):
        super().__init__()
        select_autoencoder(model, encoder, with_decoder=True)  # fails now, not at the first call
        self.model, self.encoder_kind = model, encoder

    @torch.no_grad()
    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        check_measurements(y, physics, self.model.image_shape)
        encoder, decoder = select_autoencoder(self.model, self.encoder_kind)
        _, _, code = _encoder_target(encoder, y, physics)
        return rowwise(decoder, code).clamp(0, 1)  # BEGAN's decoder (GE0) is linear


@METHODS.register("amortized")
class Amortized(Reconstructor):
    """Amortized GE without search, the zero-iteration row: x_hat = G(R(E(x_dagger))), R the
    model's latent regressor of the family ``encoder`` (``genc train regressor``)."""

    def __init__(self, model: ModelBundle, encoder: str = "ge1"):
        super().__init__()
        select_autoencoder(model, encoder)  # fails now, not at the first call
        model.require(family(encoder).regressor)
        self.model, self.encoder_kind = model, encoder

    @torch.no_grad()
    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        check_measurements(y, physics, self.model.image_shape)
        z = amortized_latent(self.model, self.encoder_kind, y, physics)
        return rowwise(self.model.generator, z).clamp(0, 1)


@METHODS.register("aegan")
class AEGANBaseline(AutoEncoderBaseline):
    """AEGAN (the journal's Table 2): an autoencoder trained with an adversarial loss on its
    reconstructions (``genc train encoder --kind aegan``), x_hat = decoder(E(x_dagger))."""

    def __init__(self, model: ModelBundle):
        super().__init__(model, encoder="aegan")
