"""BEGAN training (Berthelot et al. 2017): an autoencoder discriminator D with reconstruction error
L(v) = mean |v - D(v)|, trained as

    L_D = L(x) - k_t L(G(z)),    L_G = L(G(z)),
    k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1),

and the convergence measure M_global = L(x) + |gamma L(x) - L(G(z))| logged at every step
(``gan_log.csv``: loss_d, loss_g, l_real, l_fake, k, m_global). The model folder ends as DCGAN's:
``generator`` (EMA weights), ``discriminator`` (the autoencoder, whose encoder is GE0),
``model.json``; resumable ``gan_state.*`` holds k_t with the weights.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from ..files import ensure_folder
from ..images import save_grid
from ..nets import build_network
from . import distributed
from .augment import augment
from .gan import GAN_ARCHS, GANConfig, ema_update, save_gan_model, start_run
from .loop import ImageBank, autocast
from .state import save_state

BEGAN_LOG = ["step", "loss_d", "loss_g", "l_real", "l_fake", "k", "m_global", "seconds"]


def equilibrium_step(k: float, l_real: float, l_fake: float, gamma: float,
                     lambda_k: float) -> float:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)."""
    return min(max(k + lambda_k * (gamma * l_real - l_fake), 0.0), 1.0)


def convergence_measure(l_real: float, l_fake: float, gamma: float) -> float:
    """BEGAN's M_global = L(x) + |gamma L(x) - L(G(z))| (lower is better converged)."""
    return l_real + abs(gamma * l_real - l_fake)


class Equilibrium(nn.Module):
    """Holds k_t as a buffer, so that it is saved and resumed with the weights."""

    def __init__(self, k: float = 0.0):
        super().__init__()
        self.register_buffer("k", torch.tensor(float(k), dtype=torch.float64))


def began_losses(D: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """(L(x), L(G(z))), each the batch mean of the per-image L1 reconstruction error. D is called
    (so that DistributedDataParallel syncs it): its logit is minus the summed error."""
    pixels = real[0].numel()
    return -D(real).mean() / pixels, -D(fake).mean() / pixels


def train_began(dataset, out: str | Path, config: GANConfig, resume: bool, on_step,
                where: distributed.Info) -> dict:
    """BEGAN's loop; called by :func:`generative_encoder.training.train_gan` for arch "began"."""
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
        D = build_network(d_arch, code_dim=config.latent_dim, **geometry).to(device)
    balance = Equilibrium()
    run = start_run(out, dataset, config, G, D, where, device, resume, BEGAN_LOG,
                    extra_modules={"balance": balance})
    G_ema, G_run, D_run, opt_g, opt_d = run.G_ema, run.G_run, run.D_run, run.opt_g, run.opt_d
    rng, fixed_z, modules, optimizers = run.rng, run.fixed_z, run.modules, run.optimizers
    aug, step, main, log = run.aug, run.step, run.main, run.log

    logs: dict = {}
    t0 = time.perf_counter()
    G.train(), D.train()
    while step < config.steps:
        real = bank.batch(batch_size, rng)                                     # (B, C, S, S)
        z = G.sample_latent(batch_size, rng, device)
        k = float(balance.k)
        with autocast(device, config.amp):
            fake = G_run(z, clamp=False).float()  # the paper's linear output
            l_real, l_fake_d = began_losses(D_run, augment(real, aug, rng),
                                            augment(fake.detach(), aug, rng))
        loss_d = l_real - k * l_fake_d
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        with autocast(device, config.amp):
            pixels = real[0].numel()
            loss_g = -D_run(augment(fake, aug, rng)).float().mean() / pixels     # L(G(z))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        step += 1
        ema_update(G_ema, G, min(config.ema_decay, (1 + step) / (10 + step)))

        values = torch.stack([loss_d.detach(), loss_g.detach(), l_real.detach()])
        loss_d_v, loss_g_v, l_real_v = distributed.mean_over_ranks(values, where).tolist()
        balance.k.fill_(equilibrium_step(k, l_real_v, loss_g_v, config.gamma, config.lambda_k))
        logs = {"step": step, "loss_d": loss_d_v, "loss_g": loss_g_v, "l_real": l_real_v,
                "l_fake": loss_g_v, "k": float(balance.k),
                "m_global": convergence_measure(l_real_v, loss_g_v, config.gamma),
                "seconds": round(time.perf_counter() - t0, 3)}
        if main:
            log.write(logs)
        if step % config.checkpoint_every == 0 or step == config.steps:
            rank_rngs = distributed.gather_rng_states(rng, where)  # on every rank
            if main:
                save_state(out, "gan_state", step, modules, optimizers, rng, asdict(config),
                           rank_rngs=rank_rngs if where.distributed else None)
                save_gan_model(out, G_ema, D, config, dataset, bank, step, fixed_z,
                               {"gamma": config.gamma, "k": float(balance.k)})
        elif main and step % config.sample_every == 0:
            with torch.no_grad():
                save_grid(out / "samples" / f"step_{step:06d}.png", list(G_ema(fixed_z).split(8)))
        if main and on_step is not None:
            on_step(step, logs)
    distributed.barrier(where)
    return logs

