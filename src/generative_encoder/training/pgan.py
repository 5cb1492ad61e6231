"""Progressive GAN training (Karras et al. 2018): grow G and D from s0 x s0 (4, or 7 for 28 px) to
the image size, each new resolution faded in over ``phase_steps`` steps (alpha 0 -> 1) and then
trained stable for ``phase_steps`` more; WGAN-GP loss (gradient penalty weight 10, drift 0.001),
Adam(beta1 = 0, beta2 = 0.99) and an EMA generator, as in the paper.

Real images are average-pooled to the current resolution, and so are the generator's (full-size,
nearest-upsampled) outputs, so the discriminator sees both at the resolution being trained. A run
shorter than the schedule ends below the image size; its generator still makes full-size images.
``gan_log.csv`` also logs ``resolution`` and ``alpha``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..files import ensure_folder
from ..images import save_grid
from ..nets import build_network
from . import distributed
from .augment import augment
from .gan import GAN_ARCHS, GANConfig, ema_update, save_gan_model, start_run
from .loop import ImageBank, autocast
from .state import save_state

PGAN_BETAS = (0.0, 0.99)
GP_WEIGHT = 10.0
DRIFT_WEIGHT = 1e-3
PGAN_LOG = ["step", "loss_d", "loss_g", "d_real", "d_fake", "resolution", "alpha", "seconds"]


def pgan_schedule(step: int, phase_steps: int, n_stages: int) -> tuple[int, float]:
    """(stage, alpha) for the 0-based step: stage 0 stable for ``phase_steps``, then per new
    stage a fade-in (alpha = t / phase_steps) and a stable phase (alpha = 1); the last stage
    stays."""
    if step < phase_steps:
        return 0, 1.0
    t = step - phase_steps
    stage = 1 + t // (2 * phase_steps)
    if stage >= n_stages:
        return n_stages - 1, 1.0
    return stage, min((t % (2 * phase_steps)) / phase_steps, 1.0)


def gradient_penalty(D: nn.Module, real: Tensor, fake: Tensor, rng: torch.Generator) -> Tensor:
    """WGAN-GP: mean (||grad D(x_hat)|| - 1)^2 at random interpolates of real and fake."""
    eps = torch.rand(len(real), 1, 1, 1, generator=rng).to(real)
    mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(mix).sum(), mix, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def train_pgan(dataset, out: str | Path, config: GANConfig, resume: bool, on_step,
               where: distributed.Info) -> dict:
    """The progressive GAN's loop; called by :func:`generative_encoder.training.train_gan`."""
    out = ensure_folder(out)
    device = distributed.local_device(config.device, where.local_rank)
    batch_size = distributed.split_batch(config.batch_size, where)
    bank = ImageBank(dataset, device)
    g_arch, d_arch = GAN_ARCHS[config.arch]
    geometry = dict(channels=bank.channels, image_size=bank.image_size, width=config.width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        G = build_network(g_arch, latent_dim=config.latent_dim, latent_dist=config.latent_dist,
                          **geometry).to(device)
        D = build_network(d_arch, **geometry).to(device)
    run = start_run(out, dataset, config, G, D, where, device, resume, PGAN_LOG,
                    betas=PGAN_BETAS, find_unused=True)
    G_ema, G_run, D_run, opt_g, opt_d = run.G_ema, run.G_run, run.D_run, run.opt_g, run.opt_d
    rng, fixed_z, modules, optimizers = run.rng, run.fixed_z, run.modules, run.optimizers
    aug, step, main, log = run.aug, run.step, run.main, run.log

    logs: dict = {}
    t0 = time.perf_counter()
    G.train(), D.train()
    while step < config.steps:
        stage, alpha = pgan_schedule(step, config.phase_steps, G.n_stages)
        for net in (G, D):
            net.set_progress(stage, alpha)
        r = G.resolution
        real = F.adaptive_avg_pool2d(bank.batch(batch_size, rng), r)        # (B, C, r, r)
        z = G.sample_latent(batch_size, rng, device)
        with autocast(device, config.amp):
            fake = F.adaptive_avg_pool2d(G_run(z).float(), r)
            real_a, fake_a = augment(real, aug, rng), augment(fake.detach(), aug, rng)
            real_s, fake_s = D_run(real_a).float(), D_run(fake_a).float()
        loss_d = (fake_s.mean() - real_s.mean() + DRIFT_WEIGHT * real_s.square().mean()
                  + GP_WEIGHT * gradient_penalty(D_run, real_a, fake_a, rng))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        with autocast(device, config.amp):
            loss_g = -D_run(augment(fake, aug, rng)).float().mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        step += 1
        ema_update(G_ema, G, min(config.ema_decay, (1 + step) / (10 + step)))  # stage, alpha too

        values = torch.stack([loss_d.detach(), loss_g.detach(), real_s.detach().mean(),
                              fake_s.detach().mean()])
        loss_d_v, loss_g_v, d_real, d_fake = distributed.mean_over_ranks(values, where).tolist()
        logs = {"step": step, "loss_d": loss_d_v, "loss_g": loss_g_v, "d_real": d_real,
                "d_fake": d_fake, "resolution": r, "alpha": alpha,
                "seconds": round(time.perf_counter() - t0, 3)}
        if main:
            log.write(logs)
        if step % config.checkpoint_every == 0 or step == config.steps:
            rank_rngs = distributed.gather_rng_states(rng, where)  # on every rank
            if main:
                save_state(out, "gan_state", step, modules, optimizers, rng, asdict(config),
                           rank_rngs=rank_rngs if where.distributed else None)
                save_gan_model(out, G_ema, D, config, dataset, bank, step, fixed_z,
                               {"resolution": r, "alpha": alpha,
                                "phase_steps": config.phase_steps})
        elif main and step % config.sample_every == 0:
            with torch.no_grad():
                save_grid(out / "samples" / f"step_{step:06d}.png", list(G_ema(fixed_z).split(8)))
        if main and on_step is not None:
            on_step(step, logs)
    distributed.barrier(where)
    return logs
