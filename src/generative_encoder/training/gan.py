"""GAN pieces shared beyond one architecture: the non-saturating and hinge losses (DCGAN's and the
encoder's AEGAN), the EMA update of a generator and the BatchNorm recalibration of its weights.

The GAN loop itself is :func:`generative_encoder.training.loop.train_gan`; each architecture's
losses and schedule are in :mod:`.objectives`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GAN_LOSSES = ("nonsaturating", "hinge")


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, kind: str) -> Tensor:
    """D's loss on its logits (N,) at real and generated images; ``kind`` from GAN_LOSSES."""
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor, kind: str) -> Tensor:
    """G's loss on D's logits (N,) at generated images; ``kind`` from GAN_LOSSES."""
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


@torch.no_grad()
def ema_update(ema: nn.Module, live: nn.Module, decay: float) -> None:
    """ema <- decay ema + (1 - decay) live, parameter-wise; buffers are copied from ``live``."""
    for pe, pl in zip(ema.parameters(), live.parameters()):
        pe.lerp_(pl, 1 - decay)
    for be, bl in zip(ema.buffers(), live.buffers()):  # BatchNorm statistics follow the live net
        be.copy_(bl)


@torch.no_grad()
def recalibrate_batchnorm(
    generator: nn.Module, n_batches: int = 16, batch_size: int = 256, seed: int = 0
) -> None:
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
