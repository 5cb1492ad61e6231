"""Classical baselines, each a deepinv ``Reconstructor`` called as ``method(y, physics) -> x_hat``.

Every method here wraps a library solver (bm3d, scikit-image, scikit-learn, deepinv.optim); none
re-implements its algorithm. Inputs are deepinv physics (``Denoising``, ``Blur``, ``Downsampling``,
``Inpainting``, ``CompressedSensing``); a method given a physics it does not handle raises
:class:`ConfigError` naming the ones it accepts. Outputs are float32 ``(B, C, H, W)`` in [0, 1], on
the device of ``y``.

>>> import torch, deepinv as dinv
>>> physics = dinv.physics.Inpainting(img_size=(1, 8, 8), mask=0.7)
>>> x_hat = METHODS.build("biharmonic")(physics(torch.rand(2, 1, 8, 8)), physics)
>>> x_hat.shape
torch.Size([2, 1, 8, 8])
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from deepinv.models import Reconstructor
from deepinv.optim import L2, PGD, TVPrior
from deepinv.physics import Blur, CompressedSensing, Denoising, Downsampling, Inpainting, Physics
from skimage import restoration
from torch import Tensor

from ..errors import ConfigError
from .registry import METHODS

BASELINE_FOR_TASK = {
    "denoise": "bm3d",
    "deblur": "wiener",
    "superres": "bicubic",
    "inpaint": "biharmonic",
    "cs": "lasso_dct",
}
"""Each task's default classical baseline (a name in ``METHODS``)."""

# Default TV weight = TV_WEIGHT_PER_SIGMA * sigma, at least TV_MIN_WEIGHT (noise-free problems
# still need some regularisation to fill what the physics does not observe).
TV_WEIGHT_PER_SIGMA = 1.0
TV_MIN_WEIGHT = 0.01
TV_ITERATIONS = 100  # outer PGD iterations for Blur / Downsampling / Inpainting
TV_PROX_ITERATIONS = 20  # inner iterations of deepinv's TV prox, warm-started between PGD steps
# Default Wiener balance = WIENER_BALANCE_PER_SIGMA * sigma, at least WIENER_MIN_BALANCE.
WIENER_BALANCE_PER_SIGMA = 1.0
WIENER_MIN_BALANCE = 1e-3
RL_ITERATIONS = 30
LASSO_ALPHA = 0.1  # the GE preprint's Lasso weight
LASSO_MAX_ITER = 1000
DCT_OVERCOMPLETENESS = 2  # atoms per pixel along each axis


def _baseline(name: str) -> Callable[[type], type]:
    """Register a baseline class in ``METHODS``; its builder ignores ``model`` (GAN methods use it)."""

    def decorator(cls: type) -> type:
        accepted = set(inspect.signature(cls).parameters)

        def build(model: object = None, **options: object) -> Reconstructor:
            unknown = sorted(set(options) - accepted)
            if unknown:
                raise ConfigError(
                    f"method {name!r} has no option {unknown}; options: {sorted(accepted)}"
                )
            return cls(**options)

        METHODS.register(name)(build)
        return cls

    return decorator


def _require(physics: Physics, method: str, *types: type) -> None:
    if not isinstance(physics, types):
        accepted = ", ".join(t.__name__ for t in types)
        raise ConfigError(
            f"method {method!r} accepts {accepted} physics, got {type(physics).__name__}"
        )


def _noise_sigma(physics: Physics, batch: int, method: str) -> np.ndarray:
    """Per-image standard deviation (B,) of the physics' Gaussian noise model."""
    sigma = getattr(physics.noise_model, "sigma", None)
    if sigma is None:
        raise ConfigError(
            f"method {method!r} needs a noise model with a sigma, "
            f"got {type(physics.noise_model).__name__}"
        )
    sigma = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu().flatten().numpy()
    return np.broadcast_to(sigma, (batch,))


def _positive(value: float, option: str) -> float:
    if not value > 0:
        raise ConfigError(f"{option} must be > 0, got {value}")
    return float(value)


def _to_numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def _to_image(array: np.ndarray, like: Tensor) -> Tensor:
    """float32 tensor in [0, 1] on the device of ``like``."""
    return torch.from_numpy(np.asarray(array, dtype=np.float32)).to(like.device).clamp(0, 1)


def _map_planes(y: Tensor, restore: Callable[[np.ndarray, int, int], np.ndarray]) -> Tensor:
    """Apply ``restore(plane (H, W), b, c)`` to each image plane of ``y`` (B, C, H, W)."""
    planes = _to_numpy(y)
    out = [[restore(planes[b, c], b, c) for c in range(y.shape[1])] for b in range(y.shape[0])]
    return _to_image(np.array(out), y)


def _blur_kernels(physics: Blur, shape: torch.Size, method: str) -> np.ndarray:
    """The physics' kernels as (B, C, kh, kw) float64, padded to odd sizes.

    deepinv's convolution centres a kernel at index ``k // 2``; a trailing zero row or column makes
    an even kernel odd with the same centre, which scikit-image's Richardson-Lucy (scipy "same"
    convolution) needs to match it.
    """
    if physics.padding != "circular":
        raise ConfigError(
            f"method {method!r} assumes circular blur, got padding={physics.padding!r}"
        )
    kernels = _to_numpy(physics.filter.expand(shape[0], shape[1], -1, -1))
    k_h, k_w = kernels.shape[-2:]
    return np.pad(kernels, [(0, 0), (0, 0), (0, 1 - k_h % 2), (0, 1 - k_w % 2)])


@_baseline("identity")
class Identity(Reconstructor):
    """The degraded measurement in image space: ``y`` itself (Denoising, Blur, Inpainting), or
    ``y`` upsampled by nearest neighbour (Downsampling). The "do nothing" row of a table."""

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        _require(physics, "identity", Denoising, Blur, Inpainting, Downsampling)
        if isinstance(physics, Downsampling):
            y = F.interpolate(y, scale_factor=physics.factor, mode="nearest")
        return y.clamp(0, 1)


@_baseline("bm3d")
class BM3D(Reconstructor):
    """BM3D denoising (``bm3d`` package) at the Gaussian noise sigma of the ``Denoising`` physics;
    RGB images use ``bm3d_rgb`` (block matching on luminance), others one channel at a time."""

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        import bm3d

        _require(physics, "bm3d", Denoising)
        sigmas = _noise_sigma(physics, len(y), "bm3d")
        out = []
        for image, sigma in zip(_to_numpy(y), sigmas):  # image (C, H, W)
            if image.shape[0] == 3:
                out.append(bm3d.bm3d_rgb(image.transpose(1, 2, 0), sigma).transpose(2, 0, 1))
            else:
                out.append(np.stack([bm3d.bm3d(plane, sigma) for plane in image]))
        return _to_image(np.stack(out), y)


@_baseline("tv")
class TV(Reconstructor):
    """Total-variation reconstruction ``argmin_x 1/2 ||A x - y||^2 + weight * TV(x)``.

    Denoising uses scikit-image's Chambolle solver; Blur, Downsampling and Inpainting use deepinv's
    proximal gradient descent (``L2`` data fidelity, ``TVPrior``, step ``1 / ||A||^2``,
    ``max_iter`` iterations). The default ``weight`` is ``TV_WEIGHT_PER_SIGMA * sigma`` (the
    physics' Gaussian noise std), at least ``TV_MIN_WEIGHT``.
    """

    def __init__(self, weight: float | None = None, max_iter: int = TV_ITERATIONS):
        super().__init__()
        self.weight = None if weight is None else _positive(weight, "weight")
        self.max_iter = int(_positive(max_iter, "max_iter"))

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        _require(physics, "tv", Denoising, Blur, Downsampling, Inpainting)
        if self.weight is None:
            sigma = _noise_sigma(physics, len(y), "tv")
            weights = np.maximum(TV_WEIGHT_PER_SIGMA * sigma, TV_MIN_WEIGHT)
        else:
            weights = np.full(len(y), self.weight)
        if isinstance(physics, Denoising):
            return _map_planes(
                y, lambda plane, b, c: restoration.denoise_tv_chambolle(plane, weight=weights[b])
            )
        if np.ptp(weights) > 0:  # deepinv's PGD takes one lambda for the whole batch
            raise ConfigError(f"method 'tv' needs one weight per batch, got {weights.tolist()}")
        x0 = physics.A_adjoint(y[:1])
        solver = PGD(
            data_fidelity=L2(),
            prior=TVPrior(n_it_max=TV_PROX_ITERATIONS),
            lambda_reg=float(weights[0]),
            stepsize=1.0 / physics.compute_sqnorm(x0, verbose=False).item(),
            max_iter=self.max_iter,
        )
        with torch.no_grad():
            return solver(y, physics).clamp(0, 1)


@_baseline("wiener")
class Wiener(Reconstructor):
    """Wiener-Hunt deconvolution (``skimage.restoration.wiener``) of a circular ``Blur``, per image
    and channel. The default ``balance`` is ``WIENER_BALANCE_PER_SIGMA * sigma`` (the physics'
    Gaussian noise std), at least ``WIENER_MIN_BALANCE``."""

    def __init__(self, balance: float | None = None):
        super().__init__()
        self.balance = None if balance is None else _positive(balance, "balance")

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        _require(physics, "wiener", Blur)
        kernels = _blur_kernels(physics, y.shape, "wiener")
        if self.balance is None:
            sigma = _noise_sigma(physics, len(y), "wiener")
            balances = np.maximum(WIENER_BALANCE_PER_SIGMA * sigma, WIENER_MIN_BALANCE)
        else:
            balances = np.full(len(y), self.balance)
        return _map_planes(
            y, lambda plane, b, c: restoration.wiener(plane, kernels[b, c], balances[b])
        )


@_baseline("richardson_lucy")
class RichardsonLucy(Reconstructor):
    """Richardson-Lucy deconvolution (``skimage.restoration.richardson_lucy``, ``num_iter``
    iterations) of a circular ``Blur``, per image and channel. scikit-image convolves with zero
    padding, so each plane is first padded periodically by a kernel size, then cropped back."""

    def __init__(self, num_iter: int = RL_ITERATIONS):
        super().__init__()
        self.num_iter = int(_positive(num_iter, "num_iter"))

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        _require(physics, "richardson_lucy", Blur)
        kernels = _blur_kernels(physics, y.shape, "richardson_lucy")
        pad = max(kernels.shape[-2:])

        def restore(plane: np.ndarray, b: int, c: int) -> np.ndarray:
            wrapped = np.pad(plane.clip(0, 1), pad, mode="wrap")
            return restoration.richardson_lucy(wrapped, kernels[b, c], self.num_iter)[
                pad:-pad, pad:-pad
            ]

        return _map_planes(y, restore)


@_baseline("bicubic")
class Bicubic(Reconstructor):
    """Bicubic upsampling of a ``Downsampling`` measurement by the physics' factor."""

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        _require(physics, "bicubic", Downsampling)
        x = F.interpolate(y, scale_factor=physics.factor, mode="bicubic", align_corners=False)
        return x.clamp(0, 1)


@_baseline("biharmonic")
class Biharmonic(Reconstructor):
    """Biharmonic inpainting (``skimage.restoration.inpaint_biharmonic``) of the pixels where the
    ``Inpainting`` mask is 0, per image and channel; observed pixels are kept as measured."""

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        _require(physics, "biharmonic", Inpainting)
        missing = (physics.mask.detach().expand_as(y) == 0).cpu().numpy()  # (B, C, H, W)
        return _map_planes(
            y, lambda plane, b, c: restoration.inpaint_biharmonic(plane, missing[b, c])
        )


@functools.lru_cache(maxsize=16)
def overcomplete_dct(n: int, atoms: int) -> np.ndarray:
    """1-D overcomplete DCT dictionary (n, atoms): column k is cos(pi k (2i + 1) / (2 atoms)) over
    pixels i, scaled to unit norm. Read-only (it is cached)."""
    i = np.arange(n)[:, None]
    k = np.arange(atoms)[None, :]
    atoms_ = np.cos(np.pi * k * (2 * i + 1) / (2 * atoms))
    atoms_ /= np.linalg.norm(atoms_, axis=0)
    atoms_.setflags(write=False)
    return atoms_


@_baseline("lasso_dct")
class LassoDCT(Reconstructor):
    """Lasso in an overcomplete 2-D DCT dictionary for ``CompressedSensing``:
    ``x = Psi beta`` with ``beta = argmin ||A Psi beta - y||^2 + alpha ||beta||_1``.

    ``Psi`` is separable (``DCT_OVERCOMPLETENESS`` times as many 1-D atoms as pixels per axis, unit
    norm) and acts on each channel. ``A`` is deepinv's matrix (entries N(0, 1/m), ``y = A x``).
    scikit-learn's ``Lasso`` minimises ``1/(2m) ||A Psi beta - y||^2 + a ||beta||_1``, so it is
    given ``a = alpha / (2m)``. Solved one measurement vector at a time (``max_iter`` coordinate
    descent sweeps); the result is clamped to [0, 1].
    """

    def __init__(self, alpha: float = LASSO_ALPHA, max_iter: int = LASSO_MAX_ITER):
        super().__init__()
        self.alpha = _positive(alpha, "alpha")
        self.max_iter = int(_positive(max_iter, "max_iter"))

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        from sklearn.linear_model import Lasso

        _require(physics, "lasso_dct", CompressedSensing)
        C, H, W = physics.img_size
        channels = 1 if physics.channelwise else C  # channels seen by one row of A
        sensing = _to_numpy(physics._A).reshape(-1, channels, H, W)  # (m, c, H, W)
        m = sensing.shape[0]
        psi_h = overcomplete_dct(H, DCT_OVERCOMPLETENESS * H)
        psi_w = overcomplete_dct(W, DCT_OVERCOMPLETENESS * W)
        design = np.einsum("mchw,hk,wl->mckl", sensing, psi_h, psi_w, optimize=True)
        design = design.reshape(m, -1)  # (m, c * atoms_h * atoms_w) = A Psi
        lasso = Lasso(alpha=self.alpha / (2 * m), fit_intercept=False, max_iter=self.max_iter)
        targets = _to_numpy(y).reshape(-1, m)  # (B or B*C, m)
        beta = np.stack([lasso.fit(design, target).coef_ for target in targets])
        beta = beta.reshape(len(targets), channels, psi_h.shape[1], psi_w.shape[1])
        x = np.einsum("hk,pckl,wl->pchw", psi_h, beta, psi_w, optimize=True)
        return _to_image(x.reshape(len(y), C, H, W), y)
