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
from deepinv.physics import (
    Blur,
    CompressedSensing,
    Decolorize,
    Denoising,
    Downsampling,
    Inpainting,
    Physics,
)
from skimage import restoration
from torch import Tensor

from ..errors import ConfigError
from ..physics import SpeckleNoise, check_measurements
from ..registry import check_arguments
from .registry import METHODS

BASELINE_FOR_TASK = {
    "denoise": "bm3d",
    "deblur": "wiener",
    "superres": "bicubic",
    "inpaint": "biharmonic",
    "cs": "lasso_dct",
    "colorize": "identity",  # the gray observation in every channel
    "quantize": "tv",  # Yeh et al.'s TV row; the quantization error's std is its sigma
}
"""Each task's default classical baseline (a name in ``METHODS``)."""

# Defaults below were tuned (PSNR) on 28-64 px crops of scikit-image's camera and astronaut images
# and a piecewise-smooth synthetic image, for Gaussian noise sigma in [0, 0.2].
TV_DENOISE_WEIGHT_PER_SIGMA = 0.75  # Denoising: weight = 0.75 sigma
TV_WEIGHT_PER_SIGMA = 0.2  # Blur, Downsampling, Inpainting: weight = 0.2 sigma, at least...
TV_MIN_WEIGHT = 0.003  # ...this for Blur and Downsampling, and...
TV_INPAINT_MIN_WEIGHT = 0.03  # ...this for Inpainting: PGD fills holes slowly at small weights
TV_ITERATIONS = 100  # PGD iterations for Blur, Downsampling and Inpainting
TV_PROX_ITERATIONS = 20  # inner iterations of deepinv's TV prox, warm-started between PGD steps
WIENER_BALANCE_PER_VARIANCE = 20.0  # Wiener: balance = 20 sigma^2, at least...
WIENER_MIN_BALANCE = 1e-3  # ...this
RL_ITERATIONS = 30
LASSO_ALPHA = 0.1  # the GE preprint's Lasso weight
LASSO_MAX_ITER = 1000
LASSO_MAX_PIXELS = 4096  # sparse_dct codes at most this many values at once (dense A)
DCT_OVERCOMPLETENESS = 2  # atoms per pixel along each axis
SPARSE_PATCH = 16  # sparse_dct window for images of more than LASSO_MAX_PIXELS values
LOCAL_TOL = 1e-9  # |A x| below this counts as zero when restricting A to a window


def _baseline(name: str) -> Callable[[type], type]:
    """Register a baseline class in ``METHODS``; its builder ignores ``model`` (a GAN bundle)."""

    def decorator(cls: type) -> type:
        accepted = set(inspect.signature(cls).parameters)

        def build(model: object = None, **options: object) -> Reconstructor:
            unknown = sorted(set(options) - accepted)
            if unknown:
                raise ConfigError(
                    f"method {name!r} has no option {unknown}; options: {sorted(accepted)}"
                )
            check_arguments(cls, f"method {name!r}", **options)
            return cls(**options)

        forward = cls.forward

        @functools.wraps(forward)
        def checked(self, y, physics, **kwargs):
            check_measurements(y, physics)
            return forward(self, y, physics, **kwargs)

        cls.forward = checked
        METHODS.register(name)(build)
        return cls

    return decorator


def _require(physics: Physics, method: str, *types: type) -> None:
    if not isinstance(physics, types):
        accepted = ", ".join(t.__name__ for t in types)
        raise ConfigError(
            f"method {method!r} accepts {accepted} physics, got {type(physics).__name__}"
        )


def noise_std(physics: Physics, y: Tensor, method: str) -> np.ndarray:
    """Per-image noise standard deviation (B,) of the physics' noise model: its Gaussian sigma, or
    for speckle ``y = x (1 + sigma n)`` the root-mean-square std ``sigma * rms(x)``, with rms(x)
    estimated as ``rms(y) / sqrt(1 + sigma^2)``."""
    noise = physics.noise_model
    if getattr(noise, "sigma", None) is None:
        raise ConfigError(
            f"method {method!r} needs a noise model with a sigma, got {type(noise).__name__}"
        )
    sigma = np.broadcast_to(_to_numpy(torch.as_tensor(noise.sigma)).flatten(), (len(y),))
    if isinstance(noise, SpeckleNoise):
        rms = np.sqrt((_to_numpy(y) ** 2).reshape(len(y), -1).mean(1))
        sigma = sigma * rms / np.sqrt(1 + sigma**2)
    return sigma


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
    """The degraded measurement in image space: ``y`` itself (Denoising, Blur, Inpainting), ``y``
    upsampled by nearest neighbour (Downsampling), or the gray ``y`` (B, 1, H, W) repeated in each
    of the C channels (Decolorize). The "do nothing" row of a table."""

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        if isinstance(physics, Decolorize):
            return y.expand(-1, physics.srf.shape[1], -1, -1).clamp(0, 1)
        _require(physics, "identity", Denoising, Blur, Inpainting, Downsampling)
        if isinstance(physics, Downsampling):
            y = F.interpolate(y, scale_factor=physics.factor, mode="nearest")
        return y.clamp(0, 1)


@_baseline("bm3d")
class BM3D(Reconstructor):
    """BM3D denoising (``bm3d`` package) at the noise std of the ``Denoising`` physics (Gaussian
    sigma, or the mean speckle std); RGB images use ``bm3d_rgb`` (block matching on luminance),
    others one channel at a time."""

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        import bm3d  # here, not at the top: importing it takes about a second

        _require(physics, "bm3d", Denoising)
        sigmas = noise_std(physics, y, "bm3d")
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

    Denoising uses scikit-image's Chambolle solver. Blur, Downsampling and Inpainting use deepinv's
    proximal gradient descent (``L2`` data fidelity, ``TVPrior``, step ``1 / ||A||^2``, ``max_iter``
    iterations) from ``A^T y``, or for Inpainting from ``y`` with each hole set to the mean observed
    value of its plane. The default weight follows the physics' noise std sigma (Gaussian sigma,
    or the mean speckle std):
    ``TV_DENOISE_WEIGHT_PER_SIGMA * sigma`` for Denoising, else ``TV_WEIGHT_PER_SIGMA * sigma`` but
    at least ``TV_MIN_WEIGHT`` (``TV_INPAINT_MIN_WEIGHT`` for Inpainting).
    """

    def __init__(self, weight: float | None = None, max_iter: int = TV_ITERATIONS):
        super().__init__()
        self.weight = None if weight is None else _positive(weight, "weight")
        self.max_iter = int(_positive(max_iter, "max_iter"))

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        _require(physics, "tv", Denoising, Blur, Downsampling, Inpainting)
        weights = self._weights(physics, y)
        if isinstance(physics, Denoising):
            return _map_planes(
                y, lambda plane, b, c: restoration.denoise_tv_chambolle(plane, weight=weights[b])
            )
        if np.ptp(weights) > 0:  # deepinv's PGD takes one weight for the whole batch
            raise ConfigError(f"method 'tv' needs one weight per batch, got {weights.tolist()}")
        init = fill_holes(y, physics.mask) if isinstance(physics, Inpainting) else None
        solver = PGD(
            data_fidelity=L2(),
            prior=TVPrior(n_it_max=TV_PROX_ITERATIONS),
            lambda_reg=float(weights[0]),
            stepsize=1.0 / physics.compute_sqnorm(physics.A_adjoint(y), verbose=False).item(),
            max_iter=self.max_iter,
        )
        with torch.no_grad():
            return solver(y, physics, init=init).clamp(0, 1)

    def _weights(self, physics: Physics, y: Tensor) -> np.ndarray:
        """Per-image TV weight (B,): the ``weight`` option, else the sigma rule."""
        if self.weight is not None:
            return np.full(len(y), self.weight)
        sigma = noise_std(physics, y, "tv")
        if isinstance(physics, Denoising):
            return np.maximum(TV_DENOISE_WEIGHT_PER_SIGMA * sigma, TV_MIN_WEIGHT)
        floor = TV_INPAINT_MIN_WEIGHT if isinstance(physics, Inpainting) else TV_MIN_WEIGHT
        return np.maximum(TV_WEIGHT_PER_SIGMA * sigma, floor)


def fill_holes(y: Tensor, mask: Tensor) -> Tensor:
    """``y`` (B, C, H, W) with the pixels where ``mask`` is 0 set to their plane's observed mean."""
    mask = mask.expand_as(y)
    observed = mask.sum((-2, -1), keepdim=True).clamp(min=1)
    mean = (y * mask).sum((-2, -1), keepdim=True) / observed
    return torch.where(mask > 0, y, mean)


@_baseline("wiener")
class Wiener(Reconstructor):
    """Wiener-Hunt deconvolution (``skimage.restoration.wiener``) of a circular ``Blur``, per image
    and channel. The default ``balance`` is ``WIENER_BALANCE_PER_VARIANCE * sigma^2`` (sigma: the
    physics' Gaussian noise std), at least ``WIENER_MIN_BALANCE``."""

    def __init__(self, balance: float | None = None):
        super().__init__()
        self.balance = None if balance is None else _positive(balance, "balance")

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        _require(physics, "wiener", Blur)
        kernels = _blur_kernels(physics, y.shape, "wiener")
        if self.balance is None:
            sigma = noise_std(physics, y, "wiener")
            balances = np.maximum(WIENER_BALANCE_PER_VARIANCE * sigma**2, WIENER_MIN_BALANCE)
        else:
            balances = np.full(len(y), self.balance)
        return _map_planes(
            y, lambda plane, b, c: restoration.wiener(plane, kernels[b, c], balances[b])
        )


@_baseline("richardson_lucy")
class RichardsonLucy(Reconstructor):
    """Richardson-Lucy deconvolution (``skimage.restoration.richardson_lucy``, ``num_iter``
    iterations) of a circular ``Blur``, per image and channel. scikit-image convolves with zero
    padding, whose edge errors spread inwards at every iteration, so each plane is tiled 3 x 3
    periodically and the centre tile is kept."""

    def __init__(self, num_iter: int = RL_ITERATIONS):
        super().__init__()
        self.num_iter = int(_positive(num_iter, "num_iter"))

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        _require(physics, "richardson_lucy", Blur)
        kernels = _blur_kernels(physics, y.shape, "richardson_lucy")
        H, W = y.shape[-2:]

        def restore(plane: np.ndarray, b: int, c: int) -> np.ndarray:
            tiled = np.pad(plane.clip(0, 1), [(H, H), (W, W)], mode="wrap")  # (3H, 3W)
            return restoration.richardson_lucy(tiled, kernels[b, c], self.num_iter)[
                H : 2 * H, W : 2 * W
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
    pixels i, scaled to unit norm. Cached, hence read-only."""
    i = np.arange(n)[:, None]
    k = np.arange(atoms)[None, :]
    dictionary = np.cos(np.pi * k * (2 * i + 1) / (2 * atoms))
    dictionary /= np.linalg.norm(dictionary, axis=0)
    dictionary.setflags(write=False)
    return dictionary


@_baseline("lasso_dct")
class LassoDCT(Reconstructor):
    """Lasso in an overcomplete 2-D DCT dictionary for ``CompressedSensing``:
    ``x = Psi beta`` with ``beta = argmin ||A Psi beta - y||^2 + alpha ||beta||_1``.

    ``A`` is deepinv's matrix ``physics._A`` (m, n), entries N(0, 1/m), ``y = A x`` with ``x``
    flattened in (C, H, W) order (n = H W per channel if ``channelwise``). ``Psi`` is separable,
    with ``DCT_OVERCOMPLETENESS`` unit-norm 1-D atoms per pixel along each axis, per channel.
    scikit-learn's ``Lasso`` minimises ``1/(2m) ||A Psi beta - y||^2 + a ||beta||_1``, so it is
    given ``a = alpha / (2m)``; ``max_iter`` bounds its coordinate-descent sweeps. Each measurement
    vector is an independent problem; the result is clamped to [0, 1].
    """

    def __init__(self, alpha: float = LASSO_ALPHA, max_iter: int = LASSO_MAX_ITER):
        super().__init__()
        self.alpha = _positive(alpha, "alpha")
        self.max_iter = int(_positive(max_iter, "max_iter"))

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        from sklearn.linear_model import Lasso  # here: slow to import, as bm3d

        _require(physics, "lasso_dct", CompressedSensing)
        C, H, W = physics.img_size
        channels = 1 if physics.channelwise else C  # channels seen by one row of A
        sensing = _to_numpy(physics._A).reshape(-1, channels, H, W)  # (m, c, H, W)
        m = sensing.shape[0]
        psi_h = overcomplete_dct(H, DCT_OVERCOMPLETENESS * H)
        psi_w = overcomplete_dct(W, DCT_OVERCOMPLETENESS * W)
        design = np.einsum("mchw,hk,wl->mckl", sensing, psi_h, psi_w, optimize=True)
        design = design.reshape(m, -1)  # (m, c * atoms_h * atoms_w): A Psi
        targets = _to_numpy(y).reshape(-1, m)  # (P, m), P = B, or B * C if channelwise
        lasso = Lasso(alpha=self.alpha / (2 * m), fit_intercept=False, max_iter=self.max_iter)
        beta = lasso.fit(design, targets.T).coef_  # one independent Lasso per target
        beta = beta.reshape(len(targets), channels, psi_h.shape[1], psi_w.shape[1])
        x = np.einsum("hk,pckl,wl->pchw", psi_h, beta, psi_w, optimize=True)
        return _to_image(x.reshape(len(y), C, H, W), y)


@_baseline("sparse_dct")
class SparseDCT(LassoDCT):
    """Sparse coding in the overcomplete 2-D DCT dictionary of ``lasso_dct``, for image-space
    linear physics (Denoising and quantization, Inpainting, Downsampling, Blur, Decolorize):
    ``x = Psi beta`` with ``beta = argmin ||A Psi beta - y||^2 + alpha ||beta||_1``.

    ``A`` is built column by column by applying ``physics.A`` to unit images and solved as
    ``lasso_dct`` solves compressed sensing, with the same default alpha ``LASSO_ALPHA`` (on 4
    training digits it beat 0.02 and 0.2 for Gaussian noise 0.1; 0.5 was far worse).

    ``patch`` (pixels; None: the whole image if it has at most ``LASSO_MAX_PIXELS`` values, else
    ``SPARSE_PATCH``) codes overlapping ``patch`` x ``patch`` windows with stride ``patch // 2``,
    each solved on the window grown by the operator's footprint (the bicubic filter of
    super-resolution, a blur kernel) from the measurements that depend on the grown window alone;
    the centres are averaged over the overlaps. Yeh et al.'s "Sparse" row is patch-based too (a
    learned dictionary there, DCT here). The physics must be the same for every image of a batch.
    """

    def __init__(
        self, alpha: float = LASSO_ALPHA, max_iter: int = LASSO_MAX_ITER, patch: int | None = None
    ):
        super().__init__(alpha, max_iter)
        if patch is not None and not (isinstance(patch, int) and patch >= 2):
            raise ConfigError(f"patch must be an integer >= 2 or None, got {patch!r}")
        self.patch = patch

    def forward(self, y: Tensor, physics: Physics, **kwargs) -> Tensor:
        _require(physics, "sparse_dct", Denoising, Inpainting, Downsampling, Blur, Decolorize)
        C, H, W = _image_shape(physics, y)
        patch = self.patch
        if patch is None:
            patch = max(H, W) if C * H * W <= LASSO_MAX_PIXELS else SPARSE_PATCH
        if patch > min(H, W):
            raise ConfigError(f"patch {patch} is larger than the image ({H} x {W})")
        stride, halo = max(1, patch // 2), _footprint_radius(physics, (C, H, W), y)
        targets = _to_numpy(y).reshape(len(y), -1)  # (B, m_full)
        total = np.zeros((len(y), C, H, W))
        count = np.zeros((H, W))
        for top in _window_starts(H, patch, stride):
            for left in _window_starts(W, patch, stride):
                # solve on the window grown by the operator's footprint, keep the window
                (rows_i, r0), (cols_i, c0) = (
                    _grown(top, patch, halo, H),
                    _grown(left, patch, halo, W),
                )
                if C * len(rows_i) * len(cols_i) > LASSO_MAX_PIXELS:
                    raise ConfigError(
                        f"method 'sparse_dct' codes at most {LASSO_MAX_PIXELS} values at once; a "
                        f"{patch}-pixel patch grown by the operator's footprint ({halo} pixels) "
                        f"has {C * len(rows_i) * len(cols_i)}: pass a smaller patch"
                    )
                sensing, rows = _local_operator(physics, (C, H, W), rows_i, cols_i, y)
                code = self._code(sensing, targets[:, rows], (C, len(rows_i), len(cols_i)))
                total[:, :, top : top + patch, left : left + patch] += code[
                    :, :, r0 : r0 + patch, c0 : c0 + patch
                ]
                count[top : top + patch, left : left + patch] += 1
        return _to_image(total / count, y)

    def _code(
        self, sensing: np.ndarray, targets: np.ndarray, shape: tuple[int, int, int]
    ) -> np.ndarray:
        """Lasso codes of ``targets`` (B, m) under ``sensing`` (m, C, h, w) -> images (B, C, h, w);
        zeros where there is no measurement."""
        from sklearn.linear_model import Lasso  # here: slow to import, as bm3d

        m, (C, h, w) = sensing.shape[0], shape
        if m == 0:
            return np.zeros((len(targets), C, h, w))
        psi_h = overcomplete_dct(h, DCT_OVERCOMPLETENESS * h)
        psi_w = overcomplete_dct(w, DCT_OVERCOMPLETENESS * w)
        design = np.einsum("mchw,hk,wl->mckl", sensing, psi_h, psi_w, optimize=True)
        lasso = Lasso(alpha=self.alpha / (2 * m), fit_intercept=False, max_iter=self.max_iter)
        beta = lasso.fit(design.reshape(m, -1), targets.T).coef_  # one Lasso per target
        beta = beta.reshape(len(targets), C, psi_h.shape[1], psi_w.shape[1])
        return np.einsum("hk,pckl,wl->pchw", psi_h, beta, psi_w, optimize=True)


def _window_starts(size: int, patch: int, stride: int) -> list[int]:
    """Offsets of windows of ``patch`` pixels every ``stride`` that together cover ``size``."""
    starts = list(range(0, size - patch + 1, stride))
    return starts if starts[-1] == size - patch else starts + [size - patch]


def _footprint_radius(physics: Physics, shape: tuple[int, int, int], y: Tensor) -> int:
    """Half-width in pixels of the input support of the measurement entry at the centre (0 for
    pixel-wise physics), read off ``A_adjoint`` of that entry."""
    C, H, W = shape
    with torch.no_grad():
        impulse = torch.zeros_like(
            physics.A(torch.zeros(1, C, H, W, dtype=y.dtype, device=y.device))
        )
        impulse[(0, slice(None), *(n // 2 for n in impulse.shape[2:]))] = 1
        support = (physics.A_adjoint(impulse).abs().amax(1)[0] > LOCAL_TOL).cpu().numpy()
    rows, cols = np.nonzero(support)
    if len(rows) == 0:
        return 0
    return int(np.ceil(max(np.ptp(rows), np.ptp(cols)) / 2))


def _grown(start: int, patch: int, halo: int, size: int) -> tuple[np.ndarray, int]:
    """Pixel indices of the window start:start+patch grown by ``halo`` on both sides, wrapping
    around the image (the circular padding of blur and downsampling), and the window's offset in
    them; the whole axis when the grown window would cover it."""
    if patch + 2 * halo >= size:
        return np.arange(size), start
    return np.arange(start - halo, start + patch + halo) % size, halo


def _local_operator(
    physics: Physics, shape: tuple[int, int, int], rows_i: np.ndarray, cols_i: np.ndarray, y: Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """``physics.A`` restricted to the pixels rows_i x cols_i: (sensing (m_w, C, h, w), rows
    (m_w,)), the measurement entries that depend on those pixels only (no response to a random
    image that is zero on them, some response to one of them)."""
    C, H, W = shape
    h, w = len(rows_i), len(cols_i)
    n = C * h * w
    window = (slice(None), slice(None), torch.as_tensor(rows_i)[:, None], torch.as_tensor(cols_i))
    basis = torch.zeros(n, C, H, W, dtype=y.dtype, device=y.device)
    basis[window] = torch.eye(n, dtype=y.dtype, device=y.device).reshape(n, C, h, w)
    outside = torch.randn(1, C, H, W, generator=torch.Generator().manual_seed(0)).to(y)
    outside[window] = 0
    with torch.no_grad():
        columns = _to_numpy(physics.A(basis).reshape(n, -1))  # (n, m_full): column j is A e_j
        leak = _to_numpy(physics.A(outside).reshape(-1))
    rows = np.flatnonzero((np.abs(leak) < LOCAL_TOL) & (np.abs(columns).max(0) > LOCAL_TOL))
    return columns[:, rows].T.reshape(-1, C, h, w), rows


def _image_shape(physics: Physics, y: Tensor) -> tuple[int, int, int]:
    """(C, H, W) of the images behind the measurement y of an image-space physics."""
    if isinstance(physics, Downsampling):
        return (y.shape[1], y.shape[2] * physics.factor, y.shape[3] * physics.factor)
    if isinstance(physics, Decolorize):
        return (physics.srf.shape[1], y.shape[2], y.shape[3])
    return tuple(y.shape[1:])
