"""Encoder training (GE's pre-training step 2): an autoencoder trained on a mix of real images
and fresh samples of the frozen generator, so that the encoder compresses both alike.

Writes ``encoder`` and ``decoder`` into the model folder, ``encoder_log.csv`` with the
reconstruction MSE measured separately on real test images and on generator samples, and
resumable ``encoder_state.*``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checkpoints import load_model, save_network, write_json, write_model_info
from ..errors import ConfigError, DataError
from ..nets import AutoEncoder, build_network, default_encoder_depth
from . import distributed
from .loop import CsvLog, ImageBank, autocast, check_device, dataset_name
from .state import has_state, load_state, save_state


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of an encoder run. ``code_dim`` is the paper's m; ``depth``/``width``
    its d/f; a smaller ``decoder_depth``/``decoder_width`` weakens the decoder on purpose."""

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

    def __post_init__(self):
        if not 0 <= self.real_fraction <= 1:
            raise ConfigError(f"real_fraction must be in [0, 1], got {self.real_fraction}")
        for name in ("code_dim", "steps", "batch_size", "eval_every", "checkpoint_every",
                     "n_eval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_device(self.device)


@torch.no_grad()
def reconstruction_mse(autoencoder: AutoEncoder, images: Tensor, batch_size: int = 250) -> float:
    """Mean squared error of decoder(encoder(x)) over images (N, C, S, S)."""
    autoencoder.eval()
    total = sum(F.mse_loss(autoencoder(x), x, reduction="sum").item()
                for x in images.split(batch_size))
    autoencoder.train()
    return total / images.numel()


def train_encoder(train_set, test_set, model_dir: str | Path,
                  config: EncoderConfig = EncoderConfig(), *, resume: bool = False,
                  on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Train the autoencoder of the model folder ``model_dir`` (which must hold a generator).

    Each batch holds ``round(real_fraction * batch_size)`` real training images and generator
    samples for the rest. Returns the final logs, including ``mse_real_test`` and ``mse_fake``.

    Launched by ``torchrun`` with several processes, the autoencoder is trained with
    DistributedDataParallel: ``batch_size`` is the global batch, split evenly over the ranks, each
    rank drawing its own images and latents from its own seeded stream; rank 0 alone evaluates,
    writes files and calls ``on_step``; the logged loss is the mean over the ranks.
    """
    with distributed.session(config.device) as where:
        return _train_encoder(train_set, test_set, Path(model_dir), config, resume, on_step,
                              where)


def _train_encoder(train_set, test_set, model_dir: Path, config: EncoderConfig, resume: bool,
                   on_step, where: distributed.Info) -> dict:
    device = distributed.local_device(config.device, where.local_rank)
    batch_size = distributed.split_batch(config.batch_size, where)
    G = load_model(model_dir, device).generator.requires_grad_(False)
    bank = ImageBank(train_set, device)
    if (bank.channels, bank.image_size) != (G.channels, G.image_size):
        raise DataError(f"data are {bank.channels}-channel {bank.image_size} px images but the "
                        f"generator in {model_dir} makes {G.channels}-channel {G.image_size} px")
    depth = config.depth or default_encoder_depth(bank.image_size)
    geometry = dict(channels=bank.channels, image_size=bank.image_size, code_dim=config.code_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        encoder = build_network("conv_encoder", depth=depth, width=config.width, **geometry)
        decoder = build_network("conv_decoder", encoder_depth=depth, depth=config.decoder_depth,
                                width=config.decoder_width or config.width, **geometry)
    ae = AutoEncoder(encoder, decoder).to(device).train()
    model = distributed.wrap(ae, where, device)     # DDP on several ranks, else ae itself
    opt = torch.optim.Adam(ae.parameters(), lr=config.lr)
    rng = torch.Generator().manual_seed(distributed.rank_seed(config.seed, where))
    eval_rng = torch.Generator().manual_seed(config.seed + 1)
    test_images = ImageBank(test_set, device).images[: config.n_eval].float() / 255
    with torch.no_grad():
        fake_images = torch.cat([G(G.sample_latent(250, eval_rng, device))
                                 for _ in range(-(-config.n_eval // 250))])[: config.n_eval]

    step = 0
    if resume and has_state(model_dir, "encoder_state"):
        step = load_state(model_dir, "encoder_state", {"ae": ae}, {"ae": opt}, rng,
                          rank=where.rank)["step"]
    main = where.is_main
    if main:
        write_json(model_dir / "encoder_config.json",
                   asdict(config) | {"dataset": dataset_name(train_set)})
        log = CsvLog(model_dir / "encoder_log.csv",
                     ["step", "loss", "mse_real_test", "mse_fake", "seconds"], keep_until=step)
    n_real = round(config.real_fraction * batch_size)

    logs: dict = {}
    t0 = time.perf_counter()
    while step < config.steps:
        real = bank.batch(n_real, rng)  # (n_real, C, S, S)
        with torch.no_grad(), autocast(device, config.amp):
            fake = G(G.sample_latent(batch_size - n_real, rng, device)).float()
        x = torch.cat([real, fake])
        with autocast(device, config.amp):
            loss = F.mse_loss(model(x).float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1

        loss_value = distributed.mean_over_ranks(loss.detach(), where).item()
        logs = {"step": step, "loss": loss_value, "seconds": round(time.perf_counter() - t0, 3)}
        last = step % config.checkpoint_every == 0 or step == config.steps
        rank_rngs = distributed.gather_rng_states(rng, where) if last else None  # every rank
        if main and (step % config.eval_every == 0 or step == config.steps):
            logs |= {"mse_real_test": reconstruction_mse(ae, test_images),
                     "mse_fake": reconstruction_mse(ae, fake_images)}
        if main:
            log.write(logs)
        if main and last:
            save_state(model_dir, "encoder_state", step, {"ae": ae}, {"ae": opt}, rng,
                       asdict(config), rank_rngs=rank_rngs if where.distributed else None)
            meta = {"steps": step, "real_fraction": config.real_fraction, "seed": config.seed,
                    "dataset": dataset_name(train_set)}
            save_network(model_dir, "encoder", encoder, meta)
            save_network(model_dir, "decoder", decoder, meta)
            write_model_info(model_dir, code_dim=config.code_dim, encoder_steps=step)
        if main and on_step is not None:
            on_step(step, logs)
    distributed.barrier(where)  # no rank leaves before rank 0 has written the model
    return logs
