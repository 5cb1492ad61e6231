"""The one GAN training loop (:func:`train_gan`) and the pieces that all training loops share: an
in-memory image bank, a resumable CSV log, bfloat16 autocast and device checks.

:func:`train_gan` runs every architecture; each contributes its networks, losses and schedule as
an objective (:mod:`.objectives`). It writes into the run folder a CSV log, sample grids and
resumable checkpoints, and ends it as a model folder: ``generator`` (EMA weights),
``discriminator`` and ``model.json``, which :func:`generative_encoder.io.checkpoints.load_model`
reads.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ..devices import check_device
from ..errors import ConfigError, DataError
from ..io.checkpoints import save_network, write_json, write_model_info
from ..io.files import atomic_path, ensure_folder
from ..io.images import save_grid
from ..models.priors import latent_parts
from ..registry import check_finite_fields
from . import distributed
from .augment import parse_augment
from .gan import GAN_LOSSES, ema_update
from .objectives import OBJECTIVES
from .state import check_finite, has_state, load_state, prepare_run, save_state


def autocast(device: torch.device | str, enabled: bool):
    """bfloat16 autocast on the device's type (CPU or CUDA) when enabled, else a no-op context.

    bfloat16 keeps float32's exponent range, so no gradient scaler is needed."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def dataset_name(dataset) -> str:
    return getattr(dataset, "name", type(dataset).__name__)


class ImageBank:
    """All images of a dataset held as uint8 (N, C, S, S) on ``device``; ``batch`` samples floats.

    Small image domains (MNIST, 64 px faces, rock patches) fit in memory many times over, and
    indexing a tensor is far cheaper per step than a DataLoader on a 2-core machine. On a GPU the
    whole bank lives in GPU memory (uint8: 4500 MNIST digits take 3.5 MB, 100k 64 px RGB faces
    1.2 GB), so no batch crosses the host bus and there is nothing to pin; only the (n,) indices
    drawn on the CPU generator are copied per batch.
    """

    def __init__(self, dataset, device: torch.device | str = "cpu"):
        self.name = dataset_name(dataset)
        if len(dataset) == 0:
            raise DataError(f"dataset {self.name} is empty")
        items = [dataset[i] for i in range(len(dataset))]  # one pass: a folder decodes each file
        self.images = (
            (torch.stack([image for image, _ in items]) * 255).round().to(torch.uint8).to(device)
        )
        self._labels = torch.tensor([int(label) for _, label in items]).to(device)
        _, self.channels, self.image_size, width = self.images.shape
        if width != self.image_size:
            raise DataError(f"images must be square, got {tuple(self.images.shape[1:])}")

    def __len__(self) -> int:
        return len(self.images)

    def identity(self) -> str:
        """``name:digest``: the data set's name and a digest of its images, which a resumed
        run must match."""
        digest = hashlib.sha256(self.images.cpu().numpy().tobytes()).hexdigest()[:16]
        return f"{self.name}:{digest}"

    def labels(self) -> Tensor:
        """The class labels (N,) int64 of the images, on the bank's device; DataError if any is
        missing (label < 0, as in a folder of unlabelled images)."""
        if (self._labels < 0).any():
            raise DataError(f"dataset {self.name} has unlabelled images")
        return self._labels

    def indices(self, n: int, rng: torch.Generator) -> Tensor:
        """n indices (n,) drawn uniformly with replacement, on the bank's device."""
        return torch.randint(len(self.images), (n,), generator=rng).to(self.images.device)

    def at(self, idx: Tensor) -> Tensor:
        """The images at ``idx`` (n,) as (n, C, S, S) float in [0, 1]."""
        return self.images[idx].float() / 255

    def batch(self, n: int, rng: torch.Generator) -> Tensor:
        """n images drawn uniformly with replacement, (n, C, S, S) float in [0, 1]."""
        return self.at(self.indices(n, rng))


class CsvLog:
    """Append-only CSV log; on resume, rows after step ``keep_until`` are dropped first, and so is
    a last row that a killed run left half-written."""

    def __init__(self, path: Path, fields: list[str], keep_until: int = 0):
        self.path, self.fields = Path(path), fields
        rows = []
        if keep_until > 0 and self.path.exists():
            with self.path.open(newline="") as f:
                rows = [
                    r
                    for r in csv.DictReader(f)
                    if _complete(r, fields) and int(r["step"]) <= keep_until
                ]
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fields)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)


def _complete(row: dict, fields: list[str]) -> bool:
    """Whether a logged row has every field (a killed run may have written part of its last)."""
    return list(row) == fields and None not in row.values() and row["step"].isdigit()


@dataclass(frozen=True)
class GANConfig:
    """Hyper-parameters of a GAN run; written to ``gan_config.json`` in the run folder.

    ``loss``, ``refine``, ``hidden``, ``d_hidden``, ``mbstd`` and ``r1_gamma`` are DCGAN's, and
    so is InfoGAN's categorical code (``latent_dist="normal+cat10"``: D gets a Q head that
    predicts the category of a sample, and both nets add ``info_weight`` x its cross-entropy);
    with ``class_labels`` that code is the dataset's class (AC-GAN, Odena et al. 2017: Q also
    learns the labels of the real images, so each of the K categories draws its own class);
    ``gamma`` (diversity ratio) and ``lambda_k`` (step of the equilibrium control k_t) BEGAN's,
    whose discriminator's code size is ``latent_dim`` (the paper's h = N_z); ``phase_steps``
    (steps per fade-in and per stable phase of each resolution) the progressive GAN's.
    """

    arch: str = "dcgan"
    latent_dim: int = 64
    latent_dist: str = "normal"
    width: int = 64
    refine: int = 0  # extra stride-1 conv layers per resolution in G and D
    hidden: int = 0  # units of a fully connected layer in G after z (0 = none)
    d_hidden: int = 0  # units of a fully connected layer in D before its logit (0 = none)
    mbstd: bool = False  # minibatch standard-deviation channel in D (against mode collapse)
    info_weight: float = 1.0  # InfoGAN: weight of the category loss when latent_dist has "+catK"
    class_labels: bool = False  # AC-GAN: the "+catK" category is the real images' class label
    loss: str = "nonsaturating"
    steps: int = 4000
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.999
    r1_gamma: float = 0.0  # R1 penalty (gamma/2) E||grad_x D(x)||^2 on real images; 0 = off
    r1_every: int = 1  # lazy R1 (StyleGAN2): the penalty on every k-th D step, weighted by k
    augment: str = ""  # differentiable augmentation seen by D, e.g. "translation,cutout"
    sample_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "cpu"
    amp: bool = False  # bfloat16 autocast of the forward passes (CPU or CUDA)
    gamma: float = 0.5  # BEGAN: E[L(G(z))] = gamma E[L(x)] at equilibrium
    lambda_k: float = 1e-3  # BEGAN: k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)
    phase_steps: int = 1000  # progressive GAN: steps of each fade-in and each stable phase

    def __post_init__(self):
        check_finite_fields(self)
        if self.arch not in OBJECTIVES:
            raise ConfigError(
                f"unknown GAN architecture {self.arch!r}; known: {', '.join(OBJECTIVES)}"
            )
        if self.loss not in GAN_LOSSES:
            raise ConfigError(f"loss must be one of {GAN_LOSSES}, got {self.loss!r}")
        for name in ("steps", "batch_size", "sample_every", "checkpoint_every", "r1_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.r1_gamma < 0:
            raise ConfigError(f"r1_gamma must be >= 0, got {self.r1_gamma}")
        if latent_parts(self.latent_dist, self.latent_dim)[1] and self.arch != "dcgan":
            raise ConfigError(
                f"a categorical latent ({self.latent_dist!r}) needs arch 'dcgan', got {self.arch!r}"
            )
        if self.class_labels and not latent_parts(self.latent_dist, self.latent_dim)[1]:
            raise ConfigError(
                "class_labels needs a categorical latent, e.g. latent_dist "
                f"'normal+cat10' for 10 classes, got {self.latent_dist!r}"
            )
        if not self.info_weight >= 0:
            raise ConfigError(f"info_weight must be >= 0, got {self.info_weight}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        dcgan_only = {
            k: getattr(self, k) for k in ("refine", "hidden", "d_hidden", "mbstd", "r1_gamma")
        }
        if self.arch != "dcgan" and any(dcgan_only.values()):
            raise ConfigError(
                f"{', '.join(dcgan_only)} apply to arch 'dcgan' only, got arch "
                f"{self.arch!r} with " + ", ".join(f"{k}={v}" for k, v in dcgan_only.items())
            )
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {self.gamma}")
        if not self.lambda_k >= 0:
            raise ConfigError(f"lambda_k must be >= 0, got {self.lambda_k}")
        if self.phase_steps < 1:
            raise ConfigError(f"phase_steps must be >= 1, got {self.phase_steps}")
        parse_augment(self.augment)
        check_device(self.device)


def train_gan(
    dataset,
    out: str | Path,
    config: GANConfig = GANConfig(),
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train a GAN on ``dataset`` (items (image (C,S,S) in [0,1], label)) into the folder ``out``.

    Writes ``gan_log.csv``, ``samples/step_NNNNNN.png``, resumable ``gan_state.*`` every
    ``checkpoint_every`` steps, and the model files. With ``resume=True`` it continues from the
    last saved state (the log is cut back to it), which must be of the same data; a folder that
    holds a trained run is refused unless ``resume`` or ``overwrite``. A loss or weight that is no
    longer finite stops the run with a TrainingError before anything of that step is written.
    ``on_step(step, logs)`` is called after each step. Returns the final logs.

    Launched by ``torchrun`` with several processes, G and D are trained with
    DistributedDataParallel (gloo on CPU, NCCL on CUDA): ``batch_size`` is the global batch, split
    evenly over the ranks, each rank drawing its own images and latents from its own seeded
    stream (rank 0's is the one-process stream); rank 0 alone writes files and calls ``on_step``;
    the logged losses are means over the ranks. BatchNorm uses each rank's own share of the batch.
    """
    with distributed.session(config.device) as where:
        return _train_gan(dataset, ensure_folder(out), config, resume, overwrite, on_step, where)


def _train_gan(
    dataset,
    out: Path,
    config: GANConfig,
    resume: bool,
    overwrite: bool,
    on_step: Callable[[int, dict], None] | None,
    where: distributed.Info,
) -> dict:
    # setup: data, the objective's seeded nets, EMA copy, optimizers, resumed state, log
    device = distributed.local_device(config.device, where.local_rank)
    batch_size = distributed.split_batch(config.batch_size, where)
    bank = ImageBank(dataset, device)
    model_files = ("generator", "discriminator")
    prepare_run(out, "gan_state", model_files, bank.identity(), resume=resume, overwrite=overwrite)
    if where.is_main:
        ensure_folder(out / "samples")  # unwritable: fails now, not at the first sample grid
    rng = torch.Generator().manual_seed(distributed.rank_seed(config.seed, where))
    objective = OBJECTIVES[config.arch](
        config, bank, device, rng, partial(autocast, device, config.amp)
    )
    G, D = objective.G, objective.D
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    objective.distribute(where)
    betas = objective.betas or (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=betas)
    fixed_z = G.sample_latent(64, torch.Generator().manual_seed(config.seed + 1), device)
    modules = {"G": G, "D": D, "G_ema": G_ema} | objective.modules
    optimizers = {"G": opt_g, "D": opt_d}
    step = 0
    if resume and has_state(out, "gan_state"):
        step = load_state(out, "gan_state", modules, optimizers, rng, rank=where.rank)["step"]
    log = None
    if where.is_main:
        write_json(
            out / "gan_config.json",
            asdict(config) | {"dataset": dataset_name(dataset), "data": bank.identity()},
        )
        log = CsvLog(
            out / "gan_log.csv", ["step", *objective.log_fields, "seconds"], keep_until=step
        )

    logs: dict = {"step": step}  # a run resumed past --steps reports where it stands
    t0 = time.perf_counter()
    G.train(), D.train()
    while step < config.steps:
        objective.begin_step(step)
        idx = bank.indices(batch_size, rng)
        real = bank.at(idx)  # (B, C, S, S) in [0, 1], this rank's share
        z = G.sample_latent(batch_size, rng, device)
        loss_d = objective.loss_d(real, z, idx)
        _optimize(opt_d, loss_d)
        loss_g = objective.loss_g()  # through the D that has just stepped
        _optimize(opt_g, loss_g)
        step += 1
        # a short warm-up keeps the EMA from averaging in the random initial weights
        ema_update(G_ema, G, min(config.ema_decay, (1 + step) / (10 + step)))

        logs = {
            "step": step,
            **objective.end_step(loss_d, loss_g),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        check_finite(step, logs)
        if where.is_main:
            log.write(logs)
        if step % config.checkpoint_every == 0 or step == config.steps:
            check_finite(step, {}, modules)  # a good checkpoint is never replaced by a bad one
            rank_rngs = distributed.gather_rng_states(rng, where)  # on every rank
            if where.is_main:
                save_state(
                    out,
                    "gan_state",
                    step,
                    modules,
                    optimizers,
                    rng,
                    asdict(config),
                    rank_rngs=rank_rngs if where.distributed else None,
                )
                save_gan_model(
                    out,
                    objective.export(G_ema),
                    D,
                    config,
                    dataset,
                    bank,
                    step,
                    fixed_z,
                    objective.model_meta(),
                )
        elif where.is_main and step % config.sample_every == 0:
            save_samples(out, G_ema, fixed_z, step)
        if where.is_main and on_step is not None:
            on_step(step, logs)
    distributed.barrier(where)  # no rank leaves before rank 0 has written the model
    return logs


def _optimize(opt: torch.optim.Optimizer, loss: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def save_gan_model(
    out: Path,
    generator: nn.Module,
    discriminator: nn.Module,
    config: GANConfig,
    dataset,
    bank: ImageBank,
    step: int,
    fixed_z: Tensor,
    meta: dict | None = None,
) -> None:
    """Write the model files of a GAN run (``generator`` = the given EMA weights,
    ``discriminator``, ``model.json``) and the sample grid of ``fixed_z`` at ``step``."""
    meta = {
        "steps": step,
        "seed": config.seed,
        "ema_decay": config.ema_decay,
        "dataset": dataset_name(dataset),
    } | (meta or {})
    save_network(out, "generator", generator, meta)
    save_network(out, "discriminator", discriminator, meta)
    write_model_info(
        out,
        dataset=dataset_name(dataset),
        image_size=bank.image_size,
        channels=bank.channels,
        latent_dim=config.latent_dim,
        latent_dist=config.latent_dist,
        gan_arch=config.arch,
        gan_steps=step,
        seed=config.seed,
    )
    save_samples(out, generator, fixed_z, step)


@torch.no_grad()
def save_samples(out: Path, generator: nn.Module, fixed_z: Tensor, step: int) -> None:
    """The grid of ``generator(fixed_z)`` (rows of 8) as ``out/samples/step_NNNNNN.png``."""
    save_grid(out / "samples" / f"step_{step:06d}.png", list(generator(fixed_z).split(8)))
