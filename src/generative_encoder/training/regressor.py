"""Training amortized GE's latent regressor R (``genc train regressor``; ``genc train encoder``
runs it after the encoder): on fresh samples z of the frozen generator, R learns to map the code
E(G(z)) back to a latent whose image is G(z): loss ||G(R(c)) - G(z)||^2 + ``latent_weight``
||R(c) - z||^2 (per-element means). Regressing z alone leaves the image 3x further off (mnist5k,
1000 steps: image MSE 0.019 against 0.0057), because many latents draw nearly the same image.
With ``degradations``, the code is that of a degraded sample, E(S(G(z))) with S drawn as the
robust encoder's are (``encoder.degrade``), so that R(E(x_dagger)) starts near the clean image's
latent for the degraded x_dagger the methods see. Off by default: for mnist5k (width 1024, 8000
steps, all four families) it did not help denoising 256 training digits at sigma 0.1
(``benchmarks/time_to_quality.py --split train --n 256 --starts amortized --lrs 0.05``):
G(R(E(y))) 19.07 dB against 19.40 from clean codes, GE after 50 steps 21.64 against 21.70,
CSGM after 20 steps 22.92 against 23.06.

Writes the family's regressor network (``regressor`` for ge1) and ``regressor_log.csv`` (loss,
and on 1000 held samples the latent MSE and the image MSE of G(R(E(G(z)))) against G(z)).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..devices import check_device
from ..errors import ConfigError
from ..io.checkpoints import load_model, save_network
from ..methods.latent import select_autoencoder
from ..models.families import family
from ..models.registry import build_network
from ..registry import check_finite_fields
from ..solve import rowwise
from .encoder import check_degradations, degrade
from .loop import CsvLog
from .state import check_finite

N_HELD = 1000  # held samples of the final evaluation


@dataclass(frozen=True)
class RegressorConfig:
    """MLP size, Adam steps (learning rate cosine-decayed to 0), batch of fresh samples, weight
    of the latent term, degradations of the samples before encoding (() = clean codes)."""

    hidden: int = 512
    layers: int = 2
    steps: int = 2000
    latent_weight: float = 0.01
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    degradations: tuple[str, ...] = ()

    def __post_init__(self):
        check_finite_fields(self)
        object.__setattr__(self, "degradations", tuple(self.degradations))
        check_degradations(self.degradations)


def train_regressor(
    model_dir: str | Path,
    config: RegressorConfig = RegressorConfig(),
    encoder: str = "ge1",
    *,
    overwrite: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train and save the regressor of the encoder family ``encoder``; returns the final logs."""
    check_device(config.device)
    folder = Path(model_dir)
    name = family(encoder).regressor
    if (folder / f"{name}.safetensors").exists() and not overwrite:
        raise ConfigError(
            f"{folder} already holds a trained run ({name}); use --overwrite to train it anew"
        )
    model = load_model(folder, config.device)
    net, _ = select_autoencoder(model, encoder)
    generator = model.generator
    for module in (net, generator):
        module.eval().requires_grad_(False)
    device = torch.device(config.device)
    code_dim = rowwise(net, torch.zeros(1, *model.image_shape, device=device)).shape[1]
    check_degradations(config.degradations, model.image_shape)
    torch.manual_seed(config.seed)
    regressor = build_network(
        "latent_regressor",
        channels=model.image_shape[0],
        image_size=model.image_shape[1],
        code_dim=code_dim,
        latent_dim=generator.latent_dim,
        hidden=config.hidden,
        layers=config.layers,
    ).to(device)
    optimizer = torch.optim.Adam(regressor.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / config.steps, 1.0)))
    )
    rng = torch.Generator().manual_seed(config.seed)
    log = CsvLog(folder / f"{name}_log.csv", ["step", "loss", "image_loss", "seconds"])
    start = time.perf_counter()
    logs: dict = {}
    for step in range(1, config.steps + 1):
        z = generator.sample_latent(config.batch_size, rng).to(device)
        with torch.no_grad():
            x = generator(z)
            code = net(degrade(x, config.degradations, rng) if config.degradations else x)
        z_hat = regressor(code)
        image_loss, latent_loss = F.mse_loss(generator(z_hat), x), F.mse_loss(z_hat, z)
        loss = image_loss + config.latent_weight * latent_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        logs = {"loss": loss.item(), "image_loss": image_loss.item()}
        check_finite(step, logs)
        if step % 50 == 0 or step == config.steps:
            log.write({"step": step, **logs, "seconds": round(time.perf_counter() - start, 3)})
        if on_step:
            on_step(step, logs)
    regressor.eval()
    logs.update(evaluate_regressor(regressor, net, generator, config.seed + 1))
    meta = {"steps": config.steps, "encoder": encoder}
    if config.degradations:
        logs.update(
            evaluate_regressor(regressor, net, generator, config.seed + 1, config.degradations)
        )
        meta["degradations"] = list(config.degradations)
    meta = {**logs, **meta}
    save_network(folder, name, regressor, meta=meta)
    return logs


@torch.no_grad()
def evaluate_regressor(
    regressor, encoder, generator, seed: int, degradations: tuple[str, ...] = ()
) -> dict:
    """Latent MSE and image MSE of G(R(E(G(z)))) against G(z) on N_HELD held samples; with
    ``degradations``, of G(R(E(S(G(z))))) under the keys ``degraded_latent_mse`` and
    ``degraded_image_mse``."""
    device = next(regressor.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    z = generator.sample_latent(N_HELD, rng).to(device)
    x = generator(z)
    z_hat = regressor(encoder(degrade(x, degradations, rng, 0.0) if degradations else x))
    prefix = "degraded_" if degradations else ""
    return {
        f"{prefix}latent_mse": float(F.mse_loss(z_hat, z)),
        f"{prefix}image_mse": float(F.mse_loss(generator(z_hat), x)),
    }
