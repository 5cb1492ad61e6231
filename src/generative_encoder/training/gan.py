"""GAN training (GE's pre-training step 1): DCGAN with a non-saturating or hinge loss, Adam and an
EMA generator; a CSV log, sample grids and resumable checkpoints in the run folder. ``arch="began"``
runs BEGAN's loop (:mod:`.began`), ``arch="pgan"`` the progressive GAN's (:mod:`.pgan`).

The run folder is also the model folder: it ends with ``generator`` (EMA weights),
``discriminator`` and ``model.json`` that :func:`generative_encoder.checkpoints.load_model` reads.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints import save_network, write_json, write_model_info
from ..errors import ConfigError
from ..files import ensure_folder
from ..images import save_grid
from ..nets import build_network, latent_parts
from .augment import augment, parse_augment
from . import distributed
from .loop import CsvLog, ImageBank, autocast, check_device, dataset_name
from .state import has_state, load_state, save_state

GAN_ARCHS = {"dcgan": ("dcgan_generator", "dcgan_discriminator"),
             "began": ("began_generator", "began_discriminator"),
             "pgan": ("pgan_generator", "pgan_discriminator")}
GAN_LOSSES = ("nonsaturating", "hinge")


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
        if self.arch not in GAN_ARCHS:
            raise ConfigError(f"unknown GAN architecture {self.arch!r}; known: "
                              f"{', '.join(GAN_ARCHS)}")
        if self.loss not in GAN_LOSSES:
            raise ConfigError(f"loss must be one of {GAN_LOSSES}, got {self.loss!r}")
        for name in ("steps", "batch_size", "sample_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.r1_gamma < 0:
            raise ConfigError(f"r1_gamma must be >= 0, got {self.r1_gamma}")
        if latent_parts(self.latent_dist, self.latent_dim)[1] and self.arch != "dcgan":
            raise ConfigError(f"a categorical latent ({self.latent_dist!r}) needs arch 'dcgan', "
                              f"got {self.arch!r}")
        if self.class_labels and not latent_parts(self.latent_dist, self.latent_dim)[1]:
            raise ConfigError("class_labels needs a categorical latent, e.g. latent_dist "
                              f"'normal+cat10' for 10 classes, got {self.latent_dist!r}")
        if not self.info_weight >= 0:
            raise ConfigError(f"info_weight must be >= 0, got {self.info_weight}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        dcgan_only = {k: getattr(self, k) for k in ("refine", "hidden", "d_hidden", "mbstd",
                                                     "r1_gamma")}
        if self.arch != "dcgan" and any(dcgan_only.values()):
            raise ConfigError(f"{', '.join(dcgan_only)} apply to arch 'dcgan' only, got arch "
                              f"{self.arch!r} with " + ", ".join(
                                  f"{k}={v}" for k, v in dcgan_only.items()))
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {self.gamma}")
        if not self.lambda_k >= 0:
            raise ConfigError(f"lambda_k must be >= 0, got {self.lambda_k}")
        if self.phase_steps < 1:
            raise ConfigError(f"phase_steps must be >= 1, got {self.phase_steps}")
        parse_augment(self.augment)
        check_device(self.device)


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, kind: str) -> Tensor:
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor, kind: str) -> Tensor:
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """Mean squared gradient norm of D at real images (Mescheder et al. 2018): it keeps D from
    overfitting a small training set, the usual failure on a few thousand images."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


@torch.no_grad()
def ema_update(ema: nn.Module, live: nn.Module, decay: float) -> None:
    for pe, pl in zip(ema.parameters(), live.parameters()):
        pe.lerp_(pl, 1 - decay)
    for be, bl in zip(ema.buffers(), live.buffers()):  # BatchNorm statistics follow the live net
        be.copy_(bl)


@torch.no_grad()
def recalibrate_batchnorm(generator: nn.Module, n_batches: int = 16, batch_size: int = 256,
                          seed: int = 0) -> None:
    """Re-estimate BatchNorm running statistics of (EMA) weights from fresh latents, so that the
    generator in eval mode sees the statistics of its own weights, not of the live network's."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    generator.train()
    for _ in range(n_batches):
        generator(generator.sample_latent(batch_size, g))
    for bn in bns:
        bn.momentum = 0.1
    generator.eval()


def train_gan(dataset, out: str | Path, config: GANConfig = GANConfig(), *, resume: bool = False,
              on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Train a GAN on ``dataset`` (items (image (C,S,S) in [0,1], label)) into the folder ``out``.

    Writes ``gan_log.csv``, ``samples/step_NNNNNN.png``, resumable ``gan_state.*`` every
    ``checkpoint_every`` steps, and the model files. With ``resume=True`` it continues from the
    last saved state (the log is cut back to it). ``on_step(step, logs)`` is called after each step.
    Returns the final logs.

    Launched by ``torchrun`` with several processes, G and D are trained with
    DistributedDataParallel (gloo on CPU, NCCL on CUDA): ``batch_size`` is the global batch, split
    evenly over the ranks, each rank drawing its own images and latents from its own seeded
    stream (rank 0's is the one-process stream); rank 0 alone writes files and calls ``on_step``;
    the logged losses are means over the ranks. BatchNorm uses each rank's own share of the batch.
    """
    with distributed.session(config.device) as where:
        if config.arch == "began":
            from .began import train_began
            return train_began(dataset, out, config, resume, on_step, where)
        if config.arch == "pgan":
            from .pgan import train_pgan
            return train_pgan(dataset, out, config, resume, on_step, where)
        return _train_gan(dataset, out, config, resume, on_step, where)


def save_gan_model(out: Path, generator: nn.Module, discriminator: nn.Module, config: GANConfig,
                   dataset, bank: ImageBank, step: int, fixed_z: Tensor,
                   meta: dict | None = None) -> None:
    """Write the model files of a GAN run (``generator`` = the given EMA weights,
    ``discriminator``, ``model.json``) and the sample grid of ``fixed_z`` at ``step``."""
    meta = {"steps": step, "seed": config.seed, "ema_decay": config.ema_decay,
            "dataset": dataset_name(dataset)} | (meta or {})
    save_network(out, "generator", generator, meta)
    save_network(out, "discriminator", discriminator, meta)
    write_model_info(out, dataset=dataset_name(dataset), image_size=bank.image_size,
                     channels=bank.channels, latent_dim=config.latent_dim,
                     latent_dist=config.latent_dist, gan_arch=config.arch, gan_steps=step,
                     seed=config.seed)
    with torch.no_grad():
        samples = generator(fixed_z)
    save_grid(out / "samples" / f"step_{step:06d}.png", list(samples.split(8)))



@dataclass
class GANRun:
    """What every GAN loop starts from: EMA copy, (DDP-wrapped) nets, optimizers, the rank's
    sampling stream, the fixed latents of the sample grids, the resumed step and the log."""

    G_ema: nn.Module
    G_run: nn.Module
    D_run: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    rng: torch.Generator
    fixed_z: Tensor
    modules: dict
    optimizers: dict
    aug: tuple
    step: int
    main: bool
    log: CsvLog | None


def start_run(out: Path, dataset, config: GANConfig, G: nn.Module, D: nn.Module,
              where: distributed.Info, device, resume: bool, log_fields: list[str], *,
              betas: tuple[float, float] | None = None, extra_modules: dict | None = None,
              find_unused: bool = False) -> GANRun:
    """Set up a GAN run on G and D (shared by the DCGAN, BEGAN and progressive loops): resume
    from ``out/gan_state`` when asked, write ``gan_config.json`` and open ``gan_log.csv`` on the
    main rank."""
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    G_run = distributed.wrap(G, where, device, find_unused=find_unused)
    D_run = distributed.wrap(D, where, device, find_unused=find_unused)
    betas = betas or (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=betas)
    rng = torch.Generator().manual_seed(distributed.rank_seed(config.seed, where))
    fixed_z = G.sample_latent(64, torch.Generator().manual_seed(config.seed + 1), device)
    modules = {"G": G, "D": D, "G_ema": G_ema} | (extra_modules or {})
    optimizers = {"G": opt_g, "D": opt_d}
    step = 0
    if resume and has_state(out, "gan_state"):
        step = load_state(out, "gan_state", modules, optimizers, rng, rank=where.rank)["step"]
    log = None
    if where.is_main:
        write_json(out / "gan_config.json", asdict(config) | {"dataset": dataset_name(dataset)})
        log = CsvLog(out / "gan_log.csv", log_fields, keep_until=step)
    return GANRun(G_ema, G_run, D_run, opt_g, opt_d, rng, fixed_z, modules, optimizers,
                  parse_augment(config.augment), step, where.is_main, log)


def _logits(D: nn.Module, x: Tensor, category: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """D's logits (N,) on x, and with a category (N,) the cross-entropy of its Q head on it."""
    if category is None:
        return D(x).float(), None
    logit, q = D(x, categories=True)
    return logit.float(), F.cross_entropy(q.float(), category)


def _checked_labels(bank: ImageBank, n_classes: int) -> Tensor:
    """The bank's labels (N,), checked to be classes 0..n_classes-1."""
    labels = bank.labels()
    if labels.max() >= n_classes:
        raise ConfigError(f"dataset {bank.name} has {int(labels.max()) + 1} classes "
                          f"but the latent's category has {n_classes}: use latent_dist "
                          f"'normal+cat{int(labels.max()) + 1}'")
    return labels


def _train_gan(dataset, out: str | Path, config: GANConfig, resume: bool,
               on_step: Callable[[int, dict], None] | None, where: distributed.Info) -> dict:
    out = ensure_folder(out)
    device = distributed.local_device(config.device, where.local_rank)
    batch_size = distributed.split_batch(config.batch_size, where)
    bank = ImageBank(dataset, device)
    g_arch, d_arch = GAN_ARCHS[config.arch]
    n_cat = latent_parts(config.latent_dist)[1]
    labels = _checked_labels(bank, n_cat) if config.class_labels else None
    with torch.random.fork_rng(devices=[]):  # seeded weight init, global RNG left as it was
        torch.manual_seed(config.seed)
        G = build_network(g_arch, latent_dim=config.latent_dim, channels=bank.channels,
                          image_size=bank.image_size, width=config.width, refine=config.refine,
                          hidden=config.hidden, latent_dist=config.latent_dist).to(device)
        D = build_network(d_arch, channels=bank.channels, image_size=bank.image_size,
                          width=config.width, refine=config.refine,
                          hidden=config.d_hidden, mbstd=config.mbstd,
                          n_categories=n_cat).to(device)
    run = start_run(out, dataset, config, G, D, where, device, resume,
                    ["step", "loss_d", "loss_g", "d_real", "d_fake"]
                    + (["loss_info"] if n_cat else []) + ["seconds"])
    G_ema, G_run, D_run, opt_g, opt_d = run.G_ema, run.G_run, run.D_run, run.opt_g, run.opt_d
    rng, fixed_z, modules, optimizers = run.rng, run.fixed_z, run.modules, run.optimizers
    aug, step, main, log = run.aug, run.step, run.main, run.log

    def checkpoint(step: int) -> None:
        rank_rngs = distributed.gather_rng_states(rng, where)  # on every rank
        if not main:
            return
        save_state(out, "gan_state", step, modules, optimizers, rng, asdict(config),
                   rank_rngs=rank_rngs if where.distributed else None)
        model = copy.deepcopy(G_ema)
        recalibrate_batchnorm(model, seed=config.seed)
        save_gan_model(out, model, D, config, dataset, bank, step, fixed_z, {"loss": config.loss})

    logs: dict = {}
    t0 = time.perf_counter()
    G.train(), D.train()
    while step < config.steps:
        idx = bank.indices(batch_size, rng)
        real = bank.at(idx)  # (B, C, S, S), this rank's share
        real_label = labels[idx] if labels is not None else None
        z = G.sample_latent(batch_size, rng, device)
        category = z[:, -n_cat:].argmax(1) if n_cat else None
        with autocast(device, config.amp):
            fake = G_run(z).float()
            real.requires_grad_(config.r1_gamma > 0)
            real_logits, info_real = _logits(D_run, augment(real, aug, rng), real_label)
            fake_logits, info_d = _logits(D_run, augment(fake.detach(), aug, rng), category)
        loss_d = discriminator_loss(real_logits, fake_logits, config.loss)
        if config.r1_gamma > 0:
            loss_d = loss_d + config.r1_gamma / 2 * r1_penalty(real_logits, real)
        if n_cat:  # InfoGAN: Q (on D's features) learns to tell the category of a sample
            loss_d = loss_d + config.info_weight * info_d
        if labels is not None:  # AC-GAN: ... and the class of a real image
            loss_d = loss_d + config.info_weight * info_real
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        with autocast(device, config.amp):
            fake_logits_g, info_g = _logits(D_run, augment(fake, aug, rng), category)
        loss_g = generator_loss(fake_logits_g, config.loss)
        if n_cat:  # ... and G to make its category tellable: the mutual-information bound
            loss_g = loss_g + config.info_weight * info_g
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        step += 1
        # a short warm-up keeps the EMA from averaging in the random initial weights
        ema_update(G_ema, G, min(config.ema_decay, (1 + step) / (10 + step)))

        values = torch.stack([loss_d.detach(), loss_g.detach(),
                              torch.sigmoid(real_logits.detach()).mean(),
                              torch.sigmoid(fake_logits.detach()).mean()])
        loss_d_v, loss_g_v, d_real, d_fake = distributed.mean_over_ranks(values, where).tolist()
        logs = {"step": step, "loss_d": loss_d_v, "loss_g": loss_g_v, "d_real": d_real,
                "d_fake": d_fake}
        if n_cat:
            logs["loss_info"] = distributed.mean_over_ranks(info_g.detach().view(1), where).item()
        logs["seconds"] = round(time.perf_counter() - t0, 3)
        if main:
            log.write(logs)
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint(step)
        elif main and step % config.sample_every == 0:
            with torch.no_grad():
                save_grid(out / "samples" / f"step_{step:06d}.png", list(G_ema(fixed_z).split(8)))
        if main and on_step is not None:
            on_step(step, logs)
    distributed.barrier(where)  # no rank leaves before rank 0 has written the model
    return logs
