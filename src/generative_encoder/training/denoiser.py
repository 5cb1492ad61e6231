"""Training plug-and-play's denoiser (``genc train denoiser``): a noise-level-conditioned DRUNet
(:mod:`generative_encoder.models.denoisers`) learns D(x + sigma n, sigma) ~ x on the model's real
training images, sigma drawn per image uniformly in [``sigma_min``, ``sigma_max``] (the range the
``pnp`` method's schedule visits: DPIR starts at 49/255 and ends at the task's noise level), L1
loss as in DRUNet's paper, Adam with a cosine-decayed learning rate.

Writes ``denoiser`` into the model folder, ``denoiser_log.csv`` (loss; every ``eval_every``
steps the PSNR of denoised held-out images at sigma 0.1 beside the noisy ones'), and resumable
``denoiser_state.*``. deepinv's ``Trainer`` is not used: it checkpoints with ``torch.save``
(pickle), which the project never writes or reads.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..devices import check_device
from ..errors import ConfigError, DataError
from ..io.checkpoints import DENOISER_NAME, load_model, save_network, write_json
from ..models.registry import build_network
from ..registry import check_finite_fields
from .loop import CsvLog, ImageBank, dataset_name
from .state import check_finite, has_state, load_state, prepare_run, save_state

EVAL_SIGMA = 0.1  # noise std of the logged held-out PSNR


@dataclass(frozen=True)
class DenoiserConfig:
    """DRUNet size (``width`` channels at full resolution, ``blocks`` residual blocks per scale),
    the training noise range, Adam steps (learning rate cosine-decayed to 0), batch size."""

    width: int = 16
    blocks: int = 2
    sigma_min: float = 0.0
    sigma_max: float = 0.5
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    eval_every: int = 250
    checkpoint_every: int = 250
    n_eval: int = 256
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        check_finite_fields(self)
        for name in ("width", "blocks", "steps", "batch_size", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.sigma_min <= self.sigma_max or self.sigma_max <= 0:
            raise ConfigError(
                f"need 0 <= sigma_min <= sigma_max and sigma_max > 0, got "
                f"{self.sigma_min}, {self.sigma_max}"
            )
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        check_device(self.device)


def train_denoiser(
    train_set,
    test_set,
    model_dir: str | Path,
    config: DenoiserConfig = DenoiserConfig(),
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train and save the denoiser of the model folder ``model_dir`` (which must hold a model of
    the same image geometry as the data). A folder that already holds a denoiser is refused
    unless ``resume`` (same data only) or ``overwrite``. Returns the last logs (``psnr_test``,
    ``psnr_noisy`` at sigma ``EVAL_SIGMA``, ``seconds``: this invocation's training time)."""
    folder = Path(model_dir)
    device = torch.device(config.device)
    model = load_model(folder)
    bank = ImageBank(train_set, device)
    if (bank.channels, bank.image_size) != model.image_shape[:2]:
        raise DataError(
            f"data are {bank.channels}-channel {bank.image_size} px images but the model in "
            f"{folder} is for {model.image_shape[0]}-channel {model.image_shape[1]} px"
        )
    state = f"{DENOISER_NAME}_state"
    prepare_run(
        folder, state, (DENOISER_NAME,), bank.identity(), resume=resume, overwrite=overwrite
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = build_network(
            "drunet",
            channels=bank.channels,
            image_size=bank.image_size,
            width=config.width,
            blocks=config.blocks,
        ).to(device)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / config.steps, 1.0)))
    )
    rng = torch.Generator().manual_seed(config.seed)
    held = _held_out(test_set, config, device)
    step = 0
    if resume and has_state(folder, state):
        modules, optimizers = {"denoiser": net}, {"denoiser": optimizer}
        step = load_state(folder, state, modules, optimizers, rng)["step"]
        schedule.last_epoch = step
    write_json(
        folder / f"{DENOISER_NAME}_config.json",
        asdict(config) | {"dataset": dataset_name(train_set), "data": bank.identity()},
    )
    fields = ["step", "loss", "psnr_test", "psnr_noisy", "seconds"]
    log = CsvLog(folder / f"{DENOISER_NAME}_log.csv", fields, keep_until=step)
    logs: dict = {}
    start = time.perf_counter()
    while step < config.steps:
        x = bank.batch(config.batch_size, rng)  # (B, C, S, S)
        sigma = config.sigma_min + (config.sigma_max - config.sigma_min) * torch.rand(
            len(x), generator=rng
        ).to(device)
        noise = torch.randn(x.shape, generator=rng).to(device)
        loss = F.l1_loss(net(x + sigma.view(-1, 1, 1, 1) * noise, sigma), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        logs = {"step": step, "loss": loss.item(), "seconds": round(time.perf_counter() - start, 3)}
        check_finite(step, logs)
        last = step % config.checkpoint_every == 0 or step == config.steps
        if step % config.eval_every == 0 or step == config.steps:
            logs |= held_out_psnr(net, *held)
        log.write(logs)
        if last:
            check_finite(step, {}, {"denoiser": net})
            save_state(
                folder, state, step, {"denoiser": net}, {"denoiser": optimizer}, rng, asdict(config)
            )
            meta = {
                "steps": step,
                "sigma_min": config.sigma_min,
                "sigma_max": config.sigma_max,
                "dataset": dataset_name(train_set),
            }
            save_network(folder, DENOISER_NAME, net.eval(), meta)
            net.train()
        if on_step is not None:
            on_step(step, logs)
    return logs


def _held_out(test_set, config: DenoiserConfig, device: torch.device) -> tuple[Tensor, Tensor]:
    """(clean, noisy) held-out images (n, C, S, S): the first ``n_eval`` test images and their
    noisy copies at sigma ``EVAL_SIGMA`` (a fixed noise draw)."""
    clean = ImageBank(test_set, device).images[: config.n_eval].float() / 255
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(config.seed + 1))
    return clean, clean + EVAL_SIGMA * noise.to(device)


@torch.no_grad()
def held_out_psnr(net, clean: Tensor, noisy: Tensor, batch_size: int = 64) -> dict:
    """Mean PSNR (dB, peak 1) of D(noisy, EVAL_SIGMA) and of the noisy images against clean."""
    was_training = net.training
    net.eval()
    denoised = torch.cat([net(b, EVAL_SIGMA) for b in noisy.split(batch_size)])
    net.train(was_training)

    def psnr(x: Tensor) -> float:
        mse = (x.clamp(0, 1) - clean).square().flatten(1).mean(1)
        return float((-10 * torch.log10(mse.clamp(min=1e-12))).mean())

    return {"psnr_test": psnr(denoised), "psnr_noisy": psnr(noisy)}
