"""What each GAN architecture adds to the one training loop (:func:`.loop.train_gan`): its networks,
its losses and its schedule. Per step the loop calls, in this order,

    begin_step(step) -> loss_d(real, z, idx) -> (D steps) -> loss_g() -> (G steps) -> end_step()

- :class:`DCGAN` (Radford et al. 2016): non-saturating or hinge loss, optional R1 penalty, and
  InfoGAN's categorical code (``latent_dist="normal+catK"``: D's Q head predicts the category of
  a sample) or, with ``class_labels``, AC-GAN's (Q also learns the real images' classes).
- :class:`BEGAN` (Berthelot et al. 2017): an autoencoder discriminator D with reconstruction
  error L(v) = mean |v - D(v)|, trained as L_D = L(x) - k_t L(G(z)), L_G = L(G(z)), with
  k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1) and the convergence measure
  M_global = L(x) + |gamma L(x) - L(G(z))| logged at every step; k_t is resumed with the weights.
- :class:`PGAN` (Karras et al. 2018): G and D grow from s0 x s0 (4, or 7 for 28 px) to the image
  size, each new resolution faded in over ``phase_steps`` steps (alpha 0 -> 1) and then trained
  stable for ``phase_steps`` more; WGAN-GP loss (gradient penalty weight 10, drift 0.001) and
  Adam(beta1 = 0, beta2 = 0.99). Real images and G's (full-size, nearest-upsampled) outputs are
  average-pooled to the resolution being trained; a run shorter than the schedule ends below the
  image size, and its generator still makes full-size images.
"""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.priors import latent_parts
from ..models.registry import build_network
from . import distributed
from .augment import augment, parse_augment
from .gan import discriminator_loss, generator_loss, recalibrate_batchnorm

if TYPE_CHECKING:
    from .loop import GANConfig, ImageBank

PGAN_BETAS = (0.0, 0.99)
GP_WEIGHT = 10.0
DRIFT_WEIGHT = 1e-3


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """Mean squared gradient norm of D at real images (Mescheder et al. 2018): it keeps D from
    overfitting a small training set, the usual failure on a few thousand images."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def gradient_penalty(D: nn.Module, real: Tensor, fake: Tensor, rng: torch.Generator) -> Tensor:
    """WGAN-GP: mean (||grad D(x_hat)|| - 1)^2 at random interpolates of real and fake."""
    eps = torch.rand(len(real), 1, 1, 1, generator=rng).to(real)
    mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(mix).sum(), mix, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def equilibrium_step(
    k: float, l_real: float, l_fake: float, gamma: float, lambda_k: float
) -> float:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)."""
    return min(max(k + lambda_k * (gamma * l_real - l_fake), 0.0), 1.0)


def convergence_measure(l_real: float, l_fake: float, gamma: float) -> float:
    """BEGAN's M_global = L(x) + |gamma L(x) - L(G(z))| (lower is better converged)."""
    return l_real + abs(gamma * l_real - l_fake)


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


class Equilibrium(nn.Module):
    """Holds BEGAN's k_t as a buffer, so that it is saved and resumed with the weights."""

    def __init__(self, k: float = 0.0):
        super().__init__()
        self.register_buffer("k", torch.tensor(float(k), dtype=torch.float64))


class Objective:
    """An architecture's side of a GAN run: its seeded G and D, and the losses of each step.

    ``rng`` is the rank's sampling stream (augmentations, interpolates); ``amp()`` opens the
    autocast context of the forward passes. Subclasses name their ``networks`` and log columns.
    """

    networks: tuple[str, str]  # registry names of G and D
    betas: tuple[float, float] | None = None  # Adam's, when not the config's beta1, beta2
    find_unused = False  # DDP: some parameters get no gradient in a step
    log_fields: tuple[str, ...]  # the log's columns between "step" and "seconds"

    def __init__(
        self,
        config: GANConfig,
        bank: ImageBank,
        device: torch.device,
        rng: torch.Generator,
        amp: Callable[[], AbstractContextManager],
        g_kwargs: dict | None = None,
        d_kwargs: dict | None = None,
    ):
        self.config, self.device, self.rng, self.amp = config, device, rng, amp
        self.aug = parse_augment(config.augment)
        geometry = dict(channels=bank.channels, image_size=bank.image_size, width=config.width)
        with torch.random.fork_rng(devices=[]):  # seeded weight init, global RNG left as it was
            torch.manual_seed(config.seed)
            self.G = build_network(
                self.networks[0],
                latent_dim=config.latent_dim,
                latent_dist=config.latent_dist,
                **geometry,
                **(g_kwargs or {}),
            ).to(device)
            self.D = build_network(self.networks[1], **geometry, **(d_kwargs or {})).to(device)
        self.modules: dict[str, nn.Module] = {}  # saved and resumed besides G, D and G's EMA

    def distribute(self, where: distributed.Info) -> None:
        """Set ``G_run`` and ``D_run``: G and D, in DistributedDataParallel when distributed."""
        self.where = where
        self.G_run = distributed.wrap(self.G, where, self.device, find_unused=self.find_unused)
        self.D_run = distributed.wrap(self.D, where, self.device, find_unused=self.find_unused)

    def begin_step(self, step: int) -> None:
        """Schedule hook before the 0-based ``step`` draws its batch."""

    def loss_d(self, real: Tensor, z: Tensor, idx: Tensor) -> Tensor:
        """D's loss on real images (B, C, S, S) in [0, 1] at bank indices ``idx`` (B,) and on
        G(z); keeps G(z) for :meth:`loss_g`."""
        raise NotImplementedError

    def loss_g(self) -> Tensor:
        """G's loss on the G(z) of :meth:`loss_d`, through the D that has just stepped."""
        raise NotImplementedError

    def end_step(self, loss_d: Tensor, loss_g: Tensor) -> dict:
        """Schedule hook after both nets stepped; returns the step's log entries (means over
        the ranks), one per ``log_fields``."""
        raise NotImplementedError

    def export(self, G_ema: nn.Module) -> nn.Module:
        """The generator the model folder gets."""
        return G_ema

    def model_meta(self) -> dict:
        """What the model files record of the objective, besides steps, seed and dataset."""
        return {}

    def rank_means(self, **values: Tensor) -> dict[str, float]:
        """Scalars (0-dim tensors) averaged over the ranks, as floats under the same names."""
        means = distributed.mean_over_ranks(
            torch.stack([v.detach() for v in values.values()]), self.where
        )
        return dict(zip(values, means.tolist()))


def _checked_labels(bank: ImageBank, n_classes: int) -> Tensor:
    """The bank's labels (N,), checked to be classes 0..n_classes-1."""
    labels = bank.labels()
    if labels.max() >= n_classes:
        raise ConfigError(
            f"dataset {bank.name} has {int(labels.max()) + 1} classes "
            f"but the latent's category has {n_classes}: use latent_dist "
            f"'normal+cat{int(labels.max()) + 1}'"
        )
    return labels


class DCGAN(Objective):
    """DCGAN, with InfoGAN's or AC-GAN's categorical code when the latent has one."""

    networks = ("dcgan_generator", "dcgan_discriminator")

    def __init__(self, config: GANConfig, bank: ImageBank, device, rng, amp):
        self.n_cat = latent_parts(config.latent_dist)[1]
        self.labels = _checked_labels(bank, self.n_cat) if config.class_labels else None
        super().__init__(
            config,
            bank,
            device,
            rng,
            amp,
            g_kwargs=dict(refine=config.refine, hidden=config.hidden),
            d_kwargs=dict(
                refine=config.refine,
                hidden=config.d_hidden,
                mbstd=config.mbstd,
                n_categories=self.n_cat,
            ),
        )
        self.log_fields = ("loss_d", "loss_g", "d_real", "d_fake") + (
            ("loss_info",) if self.n_cat else ()
        )

    def logits(self, x: Tensor, category: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """D's logits (N,) on x, and with a category (N,) the cross-entropy of its Q head on it."""
        if category is None:
            return self.D_run(x).float(), None
        logit, q = self.D_run(x, categories=True)
        return logit.float(), F.cross_entropy(q.float(), category)

    def begin_step(self, step: int) -> None:
        self.r1_now = self.config.r1_gamma > 0 and step % self.config.r1_every == 0

    def loss_d(self, real: Tensor, z: Tensor, idx: Tensor) -> Tensor:
        c, aug, rng = self.config, self.aug, self.rng
        real_label = self.labels[idx] if self.labels is not None else None
        self.category = z[:, -self.n_cat :].argmax(1) if self.n_cat else None
        with self.amp():
            self.fake = self.G_run(z).float()
            real.requires_grad_(self.r1_now)
            real_logits, info_real = self.logits(augment(real, aug, rng), real_label)
            fake_logits, info_d = self.logits(augment(self.fake.detach(), aug, rng), self.category)
        loss = discriminator_loss(real_logits, fake_logits, c.loss)
        if self.r1_now:  # lazily every r1_every steps, weighted up to the same mean strength
            loss = loss + c.r1_every * c.r1_gamma / 2 * r1_penalty(real_logits, real)
        if self.n_cat:  # InfoGAN: Q (on D's features) learns to tell the category of a sample
            loss = loss + c.info_weight * info_d
        if self.labels is not None:  # AC-GAN: ... and the class of a real image
            loss = loss + c.info_weight * info_real
        self.d_real = torch.sigmoid(real_logits.detach()).mean()
        self.d_fake = torch.sigmoid(fake_logits.detach()).mean()
        return loss

    def loss_g(self) -> Tensor:
        with self.amp():
            fake_logits, self.info_g = self.logits(
                augment(self.fake, self.aug, self.rng), self.category
            )
        loss = generator_loss(fake_logits, self.config.loss)
        if self.n_cat:  # ... and G to make its category tellable: the mutual-information bound
            loss = loss + self.config.info_weight * self.info_g
        return loss

    def end_step(self, loss_d: Tensor, loss_g: Tensor) -> dict:
        logs = self.rank_means(loss_d=loss_d, loss_g=loss_g, d_real=self.d_real, d_fake=self.d_fake)
        if self.n_cat:
            logs |= self.rank_means(loss_info=self.info_g)
        return logs

    def export(self, G_ema: nn.Module) -> nn.Module:
        model = copy.deepcopy(G_ema)
        recalibrate_batchnorm(model, seed=self.config.seed)
        return model

    def model_meta(self) -> dict:
        return {"loss": self.config.loss}


class BEGAN(Objective):
    """BEGAN, with k_t held in ``balance`` and updated after each step."""

    networks = ("began_generator", "began_discriminator")
    log_fields = ("loss_d", "loss_g", "l_real", "l_fake", "k", "m_global")

    def __init__(self, config: GANConfig, bank: ImageBank, device, rng, amp):
        super().__init__(config, bank, device, rng, amp, d_kwargs=dict(code_dim=config.latent_dim))
        self.balance = Equilibrium()
        self.modules = {"balance": self.balance}

    def energy(self, x: Tensor) -> Tensor:
        """L(x): the batch mean of the per-image L1 reconstruction error. D is called (so that
        DistributedDataParallel syncs it): its logit is minus the summed error."""
        return -self.D_run(x).mean() / x[0].numel()

    def loss_d(self, real: Tensor, z: Tensor, idx: Tensor) -> Tensor:
        self.k = float(self.balance.k)
        with self.amp():
            self.fake = self.G_run(z, clamp=False).float()  # the paper's linear output
            real_a = augment(real, self.aug, self.rng)
            fake_a = augment(self.fake.detach(), self.aug, self.rng)
            self.l_real, l_fake = self.energy(real_a), self.energy(fake_a)
        return self.l_real - self.k * l_fake

    def loss_g(self) -> Tensor:
        with self.amp():
            fake = augment(self.fake, self.aug, self.rng)
            return -self.D_run(fake).float().mean() / fake[0].numel()  # L(G(z))

    def end_step(self, loss_d: Tensor, loss_g: Tensor) -> dict:
        logs = self.rank_means(loss_d=loss_d, loss_g=loss_g, l_real=self.l_real)
        l_real, l_fake, gamma = logs["l_real"], logs["loss_g"], self.config.gamma
        self.balance.k.fill_(equilibrium_step(self.k, l_real, l_fake, gamma, self.config.lambda_k))
        return logs | {
            "l_fake": l_fake,
            "k": float(self.balance.k),
            "m_global": convergence_measure(l_real, l_fake, gamma),
        }

    def model_meta(self) -> dict:
        return {"gamma": self.config.gamma, "k": float(self.balance.k)}


class PGAN(Objective):
    """The progressive GAN, its stage and fade-in set before each step."""

    networks = ("pgan_generator", "pgan_discriminator")
    betas = PGAN_BETAS
    find_unused = True
    log_fields = ("loss_d", "loss_g", "d_real", "d_fake", "resolution", "alpha")

    def begin_step(self, step: int) -> None:
        stage, self.alpha = pgan_schedule(step, self.config.phase_steps, self.G.n_stages)
        for net in (self.G, self.D):
            net.set_progress(stage, self.alpha)
        self.resolution = self.G.resolution

    def loss_d(self, real: Tensor, z: Tensor, idx: Tensor) -> Tensor:
        r, aug, rng = self.resolution, self.aug, self.rng
        real = F.adaptive_avg_pool2d(real, r)  # (B, C, r, r)
        with self.amp():
            self.fake = F.adaptive_avg_pool2d(self.G_run(z).float(), r)
            real_a, fake_a = augment(real, aug, rng), augment(self.fake.detach(), aug, rng)
            self.real_s, self.fake_s = self.D_run(real_a).float(), self.D_run(fake_a).float()
        return (
            self.fake_s.mean()
            - self.real_s.mean()
            + DRIFT_WEIGHT * self.real_s.square().mean()
            + GP_WEIGHT * gradient_penalty(self.D_run, real_a, fake_a, rng)
        )

    def loss_g(self) -> Tensor:
        with self.amp():
            return -self.D_run(augment(self.fake, self.aug, self.rng)).float().mean()

    def end_step(self, loss_d: Tensor, loss_g: Tensor) -> dict:
        return self.rank_means(
            loss_d=loss_d, loss_g=loss_g, d_real=self.real_s.mean(), d_fake=self.fake_s.mean()
        ) | {"resolution": self.resolution, "alpha": self.alpha}

    def model_meta(self) -> dict:
        return {
            "resolution": self.resolution,
            "alpha": self.alpha,
            "phase_steps": self.config.phase_steps,
        }


OBJECTIVES: dict[str, type[Objective]] = {"dcgan": DCGAN, "began": BEGAN, "pgan": PGAN}
