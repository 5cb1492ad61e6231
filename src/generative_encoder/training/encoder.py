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
  ``aegan_decoder``, ``aegan_log.csv``, ``aegan_state``. The ``aegan`` method reconstructs with it;
- ``robust``: the conv autoencoder fed degraded images (``degradations``, see
  :func:`degrade`) and trained to decode the CLEAN image, MSE(decoder(E(x_dagger)), x), plus
  ``code_weight`` x ||E(x_dagger) - stopgrad(E(x))||^2 (mean over code entries; default 0: see
  ``EncoderConfig``). x_dagger is what GE's target encodes at solve time. Files ``robust_encoder``,
  ``robust_decoder``, ``robust_log.csv`` (with ``mse_degraded_test``: decoder(E(x_dagger)) against
  x on degraded test images), ``robust_state``. ``ge`` uses it with ``encoder="robust"``.
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
from ..physics import lift, make_physics
from ..physics.tasks import BLUR_SIGMA_PER_PIXEL
from ..registry import check_finite_fields
from . import distributed
from .gan import discriminator_loss, generator_loss
from .loop import CsvLog, ImageBank, autocast, dataset_name
from .state import check_finite, has_state, load_state, prepare_run, save_state

AEGAN_D_LR_RATIO = 0.2  # AEGAN's discriminator learns at this fraction of the autoencoder's lr
AEGAN_D_BETAS = (0.5, 0.999)  # DCGAN's
DEGRADATIONS = ("denoise", "deblur", "superres", "inpaint")  # the image-space tasks
CLEAN_FRACTION = 0.25  # of each robust batch left clean
DENOISE_SIGMA = (0.0, 0.4)  # uniform range of the Gaussian noise std
DEBLUR_SIGMA = (0.5, 2.0)  # uniform range of blur_sigma in px at 28 px, scaled with the image side
DEBLUR_NOISE = 0.01
SUPERRES_FACTORS = (2, 4)
FREEFORM_MISSING = (0.1, 0.3)  # uniform range of a freeform mask's missing fraction


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of an encoder run. ``code_dim`` is the paper's m; ``depth``/``width``
    its d/f; a smaller ``decoder_depth``/``decoder_width`` weakens the decoder on purpose.
    ``kind``: the encoder family, "ge1", "vae", "aegan" or "robust" (see the module);
    ``kl_weight`` is the VAE's, ``adv_weight`` AEGAN's. ``degradations``: tasks among
    ``DEGRADATIONS`` drawn for the robust family (which needs them; the others take none);
    ``code_weight``: its code term, off by default: on training digits (28 px, m = 64, 1200
    steps) weights 0.1 and 1 collapsed the codes (every reconstruction the mean digit, MSE 0.07
    to 0.09), while the clean-image loss alone halved the code gap of degraded digits relative
    to the code spread of the ge1 encoder for denoising (0.035 vs 0.078)."""

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
    degradations: tuple[str, ...] = ()
    code_weight: float = 0.0

    def __post_init__(self):
        check_finite_fields(self)
        family(self.kind, trainable=True)
        object.__setattr__(self, "degradations", tuple(self.degradations))
        check_degradations(self.degradations)
        if self.kind == "robust" and not self.degradations:
            raise ConfigError(
                f"kind 'robust' needs degradations, some of {', '.join(DEGRADATIONS)}"
            )
        if self.degradations and self.kind != "robust":
            raise ConfigError(
                f"degradations train the robust encoder: use kind 'robust', not {self.kind!r}"
            )
        if not self.code_weight >= 0:
            raise ConfigError(f"code_weight must be >= 0, got {self.code_weight}")
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
def reconstruction_mse(
    autoencoder: AutoEncoder,
    images: Tensor,
    batch_size: int = 250,
    targets: Tensor | None = None,
) -> float:
    """Mean squared error of decoder(encoder(x)) over images (N, C, S, S) against ``targets``
    (N, C, S, S; default the images themselves)."""
    targets = images if targets is None else targets
    autoencoder.eval()
    total = sum(
        F.mse_loss(autoencoder(x), t, reduction="sum").item()
        for x, t in zip(images.split(batch_size), targets.split(batch_size))
    )
    autoencoder.train()
    return total / images.numel()


def check_degradations(names: tuple[str, ...], image_shape: tuple[int, int, int] | None = None):
    """ConfigError unless ``names`` are distinct tasks of ``DEGRADATIONS`` that images of
    ``image_shape`` (C, H, W) can take (superres needs a factor 2 or 4 that fits)."""
    for name in names:
        if name not in DEGRADATIONS:
            raise ConfigError(
                f"degradations must be among {', '.join(DEGRADATIONS)} (image-space tasks), "
                f"got {name!r}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"degradations lists a task twice: {', '.join(names)}")
    if image_shape is not None and "superres" in names and not _superres_factors(image_shape):
        raise ConfigError(
            f"superres needs a factor 2 or 4 that divides the {image_shape[1]} px images"
        )


def _superres_factors(image_shape: tuple[int, int, int]) -> tuple[int, ...]:
    _, h, w = image_shape
    return tuple(f for f in SUPERRES_FACTORS if h % f == 0 and w % f == 0 and min(h, w) >= 2 * f)


def _uniform(low: float, high: float, rng: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng))


def _draw_params(task: str, image_shape: tuple[int, int, int], rng: torch.Generator) -> dict:
    """Parameters of one drawn degradation ``task`` for images of shape (C, H, W)."""
    if task == "denoise":
        return {"sigma": _uniform(*DENOISE_SIGMA, rng)}
    if task == "deblur":
        scale = BLUR_SIGMA_PER_PIXEL * min(image_shape[1:])
        return {"blur_sigma": scale * _uniform(*DEBLUR_SIGMA, rng), "sigma": DEBLUR_NOISE}
    if task == "superres":
        factors = _superres_factors(image_shape)
        return {"factor": factors[int(torch.randint(len(factors), (), generator=rng))]}
    if float(torch.rand((), generator=rng)) < 0.5:  # inpaint
        return {"mask": "block"}
    return {"mask": "freeform", "missing": _uniform(*FREEFORM_MISSING, rng)}


@torch.no_grad()
def degrade(
    x: Tensor,
    tasks: tuple[str, ...],
    rng: torch.Generator,
    clean_fraction: float = CLEAN_FRACTION,
) -> Tensor:
    """x_dagger = lift(physics(x), physics) (B, C, H, W), GE's own view of a degraded image, for
    images x (B, C, H, W) in [0, 1]: ``round(clean_fraction * B)`` images drawn from ``rng`` stay
    clean, each other one gets a task drawn uniformly from ``tasks`` with parameters drawn from
    the module's ranges (denoise sigma U[0, 0.4]; deblur blur_sigma U[0.5, 2] px at 28 px, noise
    0.01; superres factor 2 or 4; inpaint block or freeform mask). Images drawing the same
    parameters share one physics, whose operator and noise are seeded from ``rng``."""
    check_degradations(tasks)
    shape = tuple(x.shape[1:])
    order = torch.randperm(len(x), generator=rng)
    groups: dict[tuple, list[int]] = {}  # (task, params) -> rows
    for i in sorted(order[round(clean_fraction * len(x)) :].tolist()):
        task = tasks[int(torch.randint(len(tasks), (), generator=rng))]
        params = tuple(sorted(_draw_params(task, shape, rng).items()))
        groups.setdefault((task, params), []).append(i)
    out = x.clone()
    for (task, params), rows in groups.items():
        seed = int(torch.randint(2**31 - 1, (), generator=rng))
        physics = make_physics(task, shape, seed=seed, device=x.device, **dict(params))
        index = torch.tensor(rows, device=x.device)
        out[index] = lift(physics(x[index]), physics).to(out.dtype)
    return out


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


class _RobustObjective(nn.Module):
    """The robust loss as a module's forward: MSE(decoder(E(x_in)), x) + code_weight x
    mean((E(x_in) - code)^2); x_in, x (B, C, S, S), code (B, m) the clean codes or None."""

    def __init__(self, autoencoder: AutoEncoder, code_weight: float):
        super().__init__()
        self.ae, self.code_weight = autoencoder, code_weight

    def forward(self, x_in: Tensor, x: Tensor, code: Tensor | None = None) -> Tensor:
        z = self.ae.encoder(x_in)
        loss = F.mse_loss(self.ae.decoder(z).float(), x)
        if code is not None:
            loss = loss + self.code_weight * F.mse_loss(z.float(), code)
        return loss


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
    objective = ae
    if kind == "vae":
        objective = _VAEObjective(ae, config.kl_weight)
    elif kind == "robust":
        check_degradations(config.degradations, (bank.channels, bank.image_size, bank.image_size))
        objective = _RobustObjective(ae, config.code_weight)
    model = distributed.wrap(objective, where, device)  # DDP on several ranks, else the module
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
    degraded_test = None
    if kind == "robust":
        degraded_test = degrade(
            test_images, config.degradations, torch.Generator().manual_seed(config.seed + 2), 0
        )
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
            ["step", "loss", "mse_real_test", "mse_fake"]
            + (["mse_degraded_test"] if kind == "robust" else [])
            + ["seconds"],
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
        if kind == "robust":
            x_in = degrade(x, config.degradations, rng)  # (B, C, S, S), outside autocast
        with autocast(device, config.amp):
            if kind == "vae":
                eps = torch.randn(len(x), config.code_dim, generator=rng).to(device)
                loss = model(x, eps).float()
            elif kind == "aegan":
                recon = model(x).float()
                loss = F.mse_loss(recon, x) + config.adv_weight * generator_loss(
                    disc_run(recon).float(), "nonsaturating"
                )
            elif kind == "robust":
                code = None
                if config.code_weight > 0:
                    with torch.no_grad():
                        code = ae.encoder(x).float()
                loss = model(x_in, x, code).float()
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
            if degraded_test is not None:
                logs["mse_degraded_test"] = reconstruction_mse(
                    ae, degraded_test, targets=test_images
                )
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
            if config.degradations:
                meta["degradations"] = list(config.degradations)
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
