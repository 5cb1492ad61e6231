"""GAN-prior reconstructors that search the generator's latent space, all on the one engine of
:mod:`generative_encoder.solve`; plus the autoencoder baseline.

- ``ge``: the Generative Encoder, ||E(S(G(z))) - E(x_dagger)||^2 + lambda ||z||^2, where
  x_dagger = lift(y) is the observation brought to G's size and S = match (the same mask, the
  same resampling); for encoder sensing the code y itself is the target.
- ``csgm``: Bora et al.'s image-domain fit ||A(G(z)) - y||^2 + lambda ||z||^2 (the GE papers'
  "GA" / "invertGAN").
- ``autoencoder``: decoder(E(x_dagger)), the journal's ConvAE row.

Every method is called as ``method(y, physics) -> x_hat (B, C, H, W)`` in [0, 1] and never sees
the clean image; ``method.solve(y, physics)`` returns the whole search result (objectives,
history, every restart).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from deepinv.models import Reconstructor
from deepinv.physics import Physics
from torch import Tensor

from ..checkpoints import ModelBundle
from ..errors import ConfigError
from ..physics import EncoderSensing, lift, match
from ..registry import check_arguments
from ..solve import (LossFn, SearchResult, SolveConfig, combine, encoder_fidelity,
                     expand_targets, image_fidelity, latent_l2, latent_search)
from .registry import METHODS

# lambda of the latent prior, per method. The data terms are sums over code / measurement dims,
# so the weights differ. GE's and CSGM's are the best mean PSNR over four tasks on 32 TRAINING
# digits (experiments/lambda_sweep.py; never the test digits).
DEFAULT_LATENT_WEIGHT = {"ge": 1e-1, "csgm": 1e-3}


class LatentSearch(Reconstructor):
    """Base of the latent-search methods: builds a per-row loss, runs the engine, returns G(z*).

    model: a :class:`~generative_encoder.checkpoints.ModelBundle` with at least a generator.
    config: the engine's settings (steps, lr, restarts, ...), the GE paper's by default.
    latent_weight: lambda of the prior lambda ||z||^2; None takes the method's default.
    """

    name = "latent"
    needs: tuple[str, ...] = ("generator",)  # networks the model folder must hold

    def __init__(self, model: ModelBundle, config: SolveConfig | None = None,
                 latent_weight: float | None = None, **config_overrides):
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
        self.latent_weight = (DEFAULT_LATENT_WEIGHT[self.name] if latent_weight is None
                              else latent_weight)
        if self.latent_weight < 0:
            raise ConfigError(f"latent_weight must be >= 0, got {self.latent_weight}")

    def data_term(self, y: Tensor, physics: Physics, restarts: int) -> tuple[LossFn, list]:
        """The measurement term as a per-row loss, and the networks it runs (to be frozen)."""
        raise NotImplementedError

    def solve(self, y: Tensor, physics: Physics, *, seeds=None, init: Tensor | None = None,
              on_step=None) -> SearchResult:
        """Run the latent search for a batch of measurements y (B, ...)."""
        y = y.detach()
        data, networks = self.data_term(y, physics, self.config.restarts)
        loss = combine(data, latent_l2(self.latent_weight))
        return latent_search(self.model.generator, loss, y.shape[0], self.config,
                             networks=networks, seeds=seeds, init=init, on_step=on_step)

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        return self.solve(y, physics, **kwargs).x


def _encoder_target(model: ModelBundle, y: Tensor, physics: Physics):
    """(encoder, S, target code (B, m)) of GE for this physics."""
    if isinstance(physics, EncoderSensing):
        return physics.encoder, (lambda x: x), y
    model.require("encoder")
    with torch.no_grad():
        target = model.encoder(lift(y, physics))
    return model.encoder, (lambda x: match(x, physics)), target


@METHODS.register("ge")
class GenerativeEncoder(LatentSearch):
    """GE: z* = argmin ||E(S(G(z))) - E(x_dagger)||^2 + lambda ||z||^2, x_hat = G(z*)."""

    name = "ge"
    needs = ("generator", "encoder")

    def data_term(self, y, physics, restarts):
        encoder, s, target = _encoder_target(self.model, y, physics)
        return encoder_fidelity(encoder, s, expand_targets(target, restarts)), [encoder]


@METHODS.register("csgm")
class CSGM(LatentSearch):
    """CSGM / invertGAN: z* = argmin ||A(G(z)) - y||^2 + lambda ||z||^2, x_hat = G(z*)."""

    name = "csgm"

    def data_term(self, y, physics, restarts):
        return image_fidelity(physics.A, expand_targets(y, restarts)), []


@METHODS.register("autoencoder")
class AutoEncoderBaseline(Reconstructor):
    """ConvAE: x_hat = decoder(E(x_dagger)); for encoder sensing, decoder(y)."""

    def __init__(self, model: ModelBundle):
        super().__init__()
        model.require("encoder", "decoder")
        self.model = model

    @torch.no_grad()
    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        _, _, code = _encoder_target(self.model, y, physics)
        return self.model.decoder(code)
