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

With ``real_steps`` > 0 and real training ``images``, a second phase follows: each step adds a
batch of real images x to the batch of samples, with the loss ||G(R(E(x))) - x||^2, so that R
maps the codes of real images (which G draws only approximately) to latents whose images are
close to them, not only the codes of G's own samples. For mnist5k (width 1024, 8000 sample
steps, then 2000 with real digits; ``experiments/regressor_real_phase.py``, judged on 256
training digits held out of that phase) it raised G(R(E(y))) on denoising sigma 0.1 from 19.40
to 20.13 dB, GE after 50 steps at lr 0.05 from 21.70 to 21.93 and CSGM after 20 steps from
23.06 to 23.42.

Writes the family's regressor network (``regressor`` for ge1) and ``regressor_log.csv`` (loss,
and on 1000 held samples the latent MSE and the image MSE of G(R(E(G(z)))) against G(z); with a
real phase, ``real_image_mse``: G(R(E(x))) against x on up to 1000 of the real images).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..data import stack_images
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
    of the latent term, degradations of the samples before encoding (() = clean codes); then
    ``real_steps`` steps that add a batch of real images each, at ``real_lr`` (cosine-decayed)."""

    hidden: int = 512
    layers: int = 2
    steps: int = 2000
    latent_weight: float = 0.01
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    degradations: tuple[str, ...] = ()
    real_steps: int = 0
    real_lr: float = 3e-4

    def __post_init__(self):
        check_finite_fields(self)
        for key in ("steps", "real_steps"):
            if isinstance(getattr(self, key), bool) or getattr(self, key) < 0:
                raise ConfigError(f"{key} must be an integer >= 0, got {getattr(self, key)!r}")
        object.__setattr__(self, "degradations", tuple(self.degradations))
        check_degradations(self.degradations)


def train_regressor(
    model_dir: str | Path,
    config: RegressorConfig = RegressorConfig(),
    encoder: str = "ge1",
    *,
    images: Dataset | None = None,
    overwrite: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train and save the regressor of the encoder family ``encoder``; returns the final logs.
    ``images``: the real training images of the real phase (a dataset of (C, H, W) images in
    [0, 1] of the model's geometry), needed when ``config.real_steps`` > 0. ``on_step`` gets
    the step counted over both phases."""
    check_device(config.device)
    if config.real_steps and images is None:
        raise ConfigError("real_steps > 0 needs the real training images (images=...)")
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
    if config.real_steps:
        shape = tuple(images[0][0].shape)
        if shape != model.image_shape:
            raise ConfigError(
                f"the real images are {'x'.join(map(str, shape))}, the model's "
                f"{'x'.join(map(str, model.image_shape))}: give the model's own data set"
            )
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
    rng = torch.Generator().manual_seed(config.seed)
    log = CsvLog(folder / f"{name}_log.csv", ["step", "loss", "image_loss", "real_loss", "seconds"])
    start = time.perf_counter()
    logs: dict = {}
    total = config.steps + config.real_steps
    phases = [(1, config.steps, config.lr), (config.steps + 1, config.real_steps, config.real_lr)]
    for first, n_steps, lr in phases:
        if not n_steps:
            continue
        optimizer = torch.optim.Adam(regressor.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s, n=n_steps: 0.5 * (1 + math.cos(math.pi * min(s / n, 1.0)))
        )
        for step in range(first, first + n_steps):
            z = generator.sample_latent(config.batch_size, rng).to(device)
            with torch.no_grad():
                x = generator(z)
                code = net(degrade(x, config.degradations, rng) if config.degradations else x)
            z_hat = regressor(code)
            image_loss, latent_loss = F.mse_loss(generator(z_hat), x), F.mse_loss(z_hat, z)
            loss = image_loss + config.latent_weight * latent_loss
            logs = {"image_loss": image_loss.item()}
            if step > config.steps:  # the real phase
                idx = torch.randint(len(images), (config.batch_size,), generator=rng).tolist()
                real = stack_images(images, idx).to(device)
                with torch.no_grad():
                    seen = degrade(real, config.degradations, rng) if config.degradations else real
                    real_code = net(seen)
                real_loss = F.mse_loss(generator(regressor(real_code)), real)
                loss = loss + real_loss
                logs["real_loss"] = real_loss.item()
            logs["loss"] = loss.item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            check_finite(step, logs)
            if step % 50 == 0 or step == total:
                row = {"step": step, "real_loss": "", **logs}
                log.write({**row, "seconds": round(time.perf_counter() - start, 3)})
            if on_step:
                on_step(step, logs)
    regressor.eval()
    logs.update(evaluate_regressor(regressor, net, generator, config.seed + 1))
    meta = {"steps": config.steps, "encoder": encoder}
    if config.real_steps:
        logs.update(evaluate_real(regressor, net, generator, images, config.degradations))
        meta["real_steps"] = config.real_steps
    if config.degradations:
        logs.update(
            evaluate_regressor(regressor, net, generator, config.seed + 1, config.degradations)
        )
        meta["degradations"] = list(config.degradations)
    meta = {**logs, **meta}
    save_network(folder, name, regressor, meta=meta)
    return logs


@torch.no_grad()
def evaluate_real(regressor, encoder, generator, images: Dataset, degradations=()) -> dict:
    """``real_image_mse``: G(R(E(x))) against x on the first N_HELD of ``images`` (clean codes
    unless ``degradations``, then each image's code is that of one fixed draw of them)."""
    device = next(regressor.parameters()).device
    x = stack_images(images, range(min(N_HELD, len(images)))).to(device)
    rng = torch.Generator().manual_seed(0)
    seen = degrade(x, degradations, rng, 0.0) if degradations else x
    return {"real_image_mse": float(F.mse_loss(generator(regressor(encoder(seen))), x))}


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
