"""Encoder training (GE's pre-training step 2): an autoencoder trained on a mix of real images
and fresh samples of the frozen generator, so that the encoder compresses both alike.

Writes ``encoder`` and ``decoder`` into the model folder, ``encoder_log.csv`` with the
reconstruction MSE measured separately on real test images and on generator samples, and
resumable ``encoder_state.*``.

``kind`` picks the encoder family (:mod:`generative_encoder.models.families`; each is written
under its own names, so one folder holds them all):

- ``ge1``: the GE journal's conv autoencoder, mean squared error;
- ``vae``: a VAE (Kingma & Welling), Bernoulli likelihood (binary cross-entropy summed over the
  pixels) + ``kl_weight`` x KL(q(z|x) || N(0, I)), reparameterised samples in training; E(x) is
  the posterior mean. Files ``vae_encoder``, ``vae_decoder``, ``vae_log.csv``, ``vae_state``;
- ``aegan``: the conv autoencoder with an added adversarial loss on its reconstructions: a DCGAN
  discriminator learns the inputs from the reconstructions (non-saturating loss) and the
  autoencoder minimises MSE + ``adv_weight`` x its generator loss. Files ``aegan_encoder``,
  ``aegan_decoder``, ``aegan_log.csv``, ``aegan_state``. The ``aegan`` method reconstructs with it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..devices import check_device
from ..errors import ConfigError, DataError
from ..io.checkpoints import load_model, save_network, write_json, write_model_info
from ..models.autoencoders import AutoEncoder, default_encoder_depth
from ..models.families import family
from ..models.registry import build_network
from ..registry import check_finite_fields
from . import distributed
from .gan import discriminator_loss, generator_loss
from .loop import CsvLog, ImageBank, autocast, dataset_name
from .state import check_finite, has_state, load_state, prepare_run, save_state

AEGAN_D_LR_RATIO = 0.2  # AEGAN's discriminator learns at this fraction of the autoencoder's lr
AEGAN_D_BETAS = (0.5, 0.999)  # DCGAN's


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of an encoder run. ``code_dim`` is the paper's m; ``depth``/``width``
    its d/f; a smaller ``decoder_depth``/``decoder_width`` weakens the decoder on purpose.
    ``kind``: the encoder family, "ge1", "vae" or "aegan" (see the module); ``kl_weight`` is the
    VAE's,
    ``adv_weight`` AEGAN's."""

    code_dim: int = 128
    depth: int | None = None
    width: int = 16
    decoder_depth: int | None = None
    decoder_width: int | None = None
    real_fraction: float = 0.5
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    eval_every: int = 250
    checkpoint_every: int = 500
    n_eval: int = 500
    seed: int = 0
    device: str = "cpu"
    amp: bool = False  # bfloat16 autocast of the forward passes (CPU or CUDA)
    kind: str = "ge1"
    kl_weight: float = 1.0
    adv_weight: float = 0.01

    def __post_init__(self):
        check_finite_fields(self)
        family(self.kind, trainable=True)
        if not (self.kl_weight >= 0 and self.adv_weight >= 0):
            raise ConfigError(
                f"kl_weight and adv_weight must be >= 0, got {self.kl_weight}, {self.adv_weight}"
            )
        if not 0 <= self.real_fraction <= 1:
            raise ConfigError(f"real_fraction must be in [0, 1], got {self.real_fraction}")
        for name in ("code_dim", "steps", "batch_size", "eval_every", "checkpoint_every", "n_eval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_device(self.device)


@torch.no_grad()
def reconstruction_mse(autoencoder: AutoEncoder, images: Tensor, batch_size: int = 250) -> float:
    """Mean squared error of decoder(encoder(x)) over images (N, C, S, S)."""
    autoencoder.eval()
    total = sum(
        F.mse_loss(autoencoder(x), x, reduction="sum").item() for x in images.split(batch_size)
    )
    autoencoder.train()
    return total / images.numel()


def vae_loss(
    encoder: nn.Module, decoder: nn.Module, x: Tensor, eps: Tensor, kl_weight: float
) -> Tensor:
    """Negative ELBO per image, batch mean: BCE(decoder(mu + sigma eps), x) summed over pixels
    + kl_weight KL(N(mu, sigma^2) || N(0, I)); x (B, C, S, S) in [0, 1], eps (B, code_dim)."""
    mu, logvar = encoder.posterior(x)  # (B, m) x 2
    recon = decoder(mu + torch.exp(0.5 * logvar) * eps)
    bce = F.binary_cross_entropy(recon.clamp(1e-6, 1 - 1e-6), x, reduction="sum")
    kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum()
    return (bce + kl_weight * kl) / len(x)


class _VAEObjective(nn.Module):
    """The VAE loss as a module's forward, so that DistributedDataParallel syncs its gradients."""

    def __init__(self, autoencoder: AutoEncoder, kl_weight: float):
        super().__init__()
        self.ae, self.kl_weight = autoencoder, kl_weight

    def forward(self, x: Tensor, eps: Tensor) -> Tensor:
        return vae_loss(self.ae.encoder, self.ae.decoder, x, eps, self.kl_weight)


def train_encoder(
    train_set,
    test_set,
    model_dir: str | Path,
    config: EncoderConfig = EncoderConfig(),
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train the autoencoder of the model folder ``model_dir`` (which must hold a generator).

    Each batch holds ``round(real_fraction * batch_size)`` real training images and generator
    samples for the rest. Returns the final logs, including ``mse_real_test`` and ``mse_fake``.

    Launched by ``torchrun`` with several processes, the autoencoder is trained with
    DistributedDataParallel: ``batch_size`` is the global batch, split evenly over the ranks, each
    rank drawing its own images and latents from its own seeded stream; rank 0 alone evaluates,
    writes files and calls ``on_step``; the logged loss is the mean over the ranks.

    A folder that already holds this family's encoder is refused unless ``resume`` (same data
    only) or ``overwrite``; a loss or weight that is no longer finite stops the run with a
    TrainingError before anything of that step is written.
    """
    with distributed.session(config.device) as where:
        return _train_encoder(
            train_set, test_set, Path(model_dir), config, resume, overwrite, on_step, where
        )


def _train_encoder(
    train_set,
    test_set,
    model_dir: Path,
    config: EncoderConfig,
    resume: bool,
    overwrite: bool,
    on_step,
    where: distributed.Info,
) -> dict:
    device = distributed.local_device(config.device, where.local_rank)
    batch_size = distributed.split_batch(config.batch_size, where)
    G = load_model(model_dir, device).generator.requires_grad_(False)
    bank = ImageBank(train_set, device)
    if (bank.channels, bank.image_size) != (G.channels, G.image_size):
        raise DataError(
            f"data are {bank.channels}-channel {bank.image_size} px images but the "
            f"generator in {model_dir} makes {G.channels}-channel {G.image_size} px"
        )
    depth = config.depth or default_encoder_depth(bank.image_size)
    geometry = dict(channels=bank.channels, image_size=bank.image_size, code_dim=config.code_dim)
    kind = config.kind
    prefix, log_name = family(kind).prefix, family(kind).log
    model_files = (f"{prefix}encoder", f"{prefix}decoder")
    prepare_run(
        model_dir,
        f"{log_name}_state",
        model_files,
        bank.identity(),
        resume=resume,
        overwrite=overwrite,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        encoder = build_network(family(kind).arch, depth=depth, width=config.width, **geometry)
        decoder = build_network(
            "conv_decoder",
            encoder_depth=depth,
            depth=config.decoder_depth,
            width=config.decoder_width or config.width,
            **geometry,
        )
        disc = None
        if kind == "aegan":  # AEGAN's discriminator: the inputs against their reconstructions
            disc = build_network(
                "dcgan_discriminator",
                channels=bank.channels,
                image_size=bank.image_size,
                width=config.width,
            ).to(device)
    ae = AutoEncoder(encoder, decoder).to(device).train()
    # DDP on several ranks, else the module itself
    model = distributed.wrap(
        _VAEObjective(ae, config.kl_weight) if kind == "vae" else ae, where, device
    )
    opt = torch.optim.Adam(ae.parameters(), lr=config.lr)
    modules, optimizers = {"ae": ae}, {"ae": opt}
    if disc is not None:
        disc_run = distributed.wrap(disc, where, device)
        modules["D"] = disc
        optimizers["D"] = torch.optim.Adam(
            disc.parameters(), lr=config.lr * AEGAN_D_LR_RATIO, betas=AEGAN_D_BETAS
        )
    rng = torch.Generator().manual_seed(distributed.rank_seed(config.seed, where))
    eval_rng = torch.Generator().manual_seed(config.seed + 1)
    test_images = ImageBank(test_set, device).images[: config.n_eval].float() / 255
    with torch.no_grad():
        fake_images = torch.cat(
            [G(G.sample_latent(250, eval_rng, device)) for _ in range(-(-config.n_eval // 250))]
        )[: config.n_eval]

    step = 0
    if resume and has_state(model_dir, f"{log_name}_state"):
        step = load_state(
            model_dir, f"{log_name}_state", modules, optimizers, rng, rank=where.rank
        )["step"]
    main = where.is_main
    if main:
        write_json(
            model_dir / f"{log_name}_config.json",
            asdict(config) | {"dataset": dataset_name(train_set), "data": bank.identity()},
        )
        log = CsvLog(
            model_dir / f"{log_name}_log.csv",
            ["step", "loss", "mse_real_test", "mse_fake", "seconds"],
            keep_until=step,
        )
    n_real = round(config.real_fraction * batch_size)

    logs: dict = {}
    t0 = time.perf_counter()
    while step < config.steps:
        real = bank.batch(n_real, rng)  # (n_real, C, S, S)
        with torch.no_grad(), autocast(device, config.amp):
            fake = G(G.sample_latent(batch_size - n_real, rng, device)).float()
        x = torch.cat([real, fake])
        if kind == "aegan":
            _discriminator_step(disc_run, ae, x, optimizers["D"], device, config.amp)
        with autocast(device, config.amp):
            if kind == "vae":
                eps = torch.randn(len(x), config.code_dim, generator=rng).to(device)
                loss = model(x, eps).float()
            elif kind == "aegan":
                recon = model(x).float()
                loss = F.mse_loss(recon, x) + config.adv_weight * generator_loss(
                    disc_run(recon).float(), "nonsaturating"
                )
            else:
                loss = F.mse_loss(model(x).float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1

        loss_value = distributed.mean_over_ranks(loss.detach(), where).item()
        logs = {"step": step, "loss": loss_value, "seconds": round(time.perf_counter() - t0, 3)}
        check_finite(step, logs)
        last = step % config.checkpoint_every == 0 or step == config.steps
        if last:
            check_finite(step, {}, modules)  # a good checkpoint is never replaced by a bad one
        rank_rngs = distributed.gather_rng_states(rng, where) if last else None  # every rank
        if main and (step % config.eval_every == 0 or step == config.steps):
            logs |= {
                "mse_real_test": reconstruction_mse(ae, test_images),
                "mse_fake": reconstruction_mse(ae, fake_images),
            }
        if main:
            log.write(logs)
        if main and last:
            save_state(
                model_dir,
                f"{log_name}_state",
                step,
                modules,
                optimizers,
                rng,
                asdict(config),
                rank_rngs=rank_rngs if where.distributed else None,
            )
            meta = {
                "steps": step,
                "real_fraction": config.real_fraction,
                "seed": config.seed,
                "dataset": dataset_name(train_set),
            }
            if kind != "ge1":
                meta["kind"] = kind
            save_network(model_dir, f"{prefix}encoder", encoder, meta)
            save_network(model_dir, f"{prefix}decoder", decoder, meta)
            write_model_info(
                model_dir, **{f"{prefix}code_dim": config.code_dim, f"{log_name}_steps": step}
            )
        if main and on_step is not None:
            on_step(step, logs)
    distributed.barrier(where)  # no rank leaves before rank 0 has written the model
    return logs


def _discriminator_step(
    disc: nn.Module,
    ae: AutoEncoder,
    x: Tensor,
    opt: torch.optim.Optimizer,
    device: torch.device,
    amp: bool,
) -> None:
    """One AEGAN discriminator update: the inputs x are real, their reconstructions fake."""
    with torch.no_grad(), autocast(device, amp):
        recon = ae(x).float()
    with autocast(device, amp):
        loss = discriminator_loss(disc(x).float(), disc(recon).float(), "nonsaturating")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
