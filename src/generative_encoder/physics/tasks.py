"""Named, seeded degradations built on deepinv's own physics classes.

``make_physics(task, (C, H, W), seed=..., **params)`` returns a ``deepinv.physics.Physics``;
``y = physics(x)`` maps images x (B, C, H, W) in [0, 1] to noisy measurements y. The same
(task, params, seed) gives the same operator and, from a freshly made physics, the same noise:
the operator's randomness (masks, sensing matrix) comes from a CPU generator and the noise from a
generator of its own on ``device``, both seeded from ``seed``. Calling ``physics(x)`` again draws
new noise; ``physics.noise_model.reset_rng()`` replays it.

>>> physics = make_physics("inpaint", (3, 64, 64), mask="random", missing=0.3, seed=1)
>>> physics(torch.rand(2, 3, 64, 64)).shape
torch.Size([2, 3, 64, 64])
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any

import torch
from deepinv.physics import (
    Blur,
    CompressedSensing,
    Decolorize,
    Denoising,
    Downsampling,
    GaussianNoise,
    Inpainting,
    NoiseModel,
    Physics,
)
from deepinv.physics.functional import gaussian_blur

from ..devices import check_device
from ..errors import ConfigError
from ..registry import Registry, check_arguments
from .masks import block_mask, check_mask, default_block, freeform_mask, random_mask
from .noise import QuantizationNoise, SpeckleNoise, check_sigma, gaussian
from .seeds import OPERATOR_STREAM, PHYSICS_NOISE_STREAM, stream_seed

# A builder takes (img_shape, operator_rng on the CPU, noise_rng on the target device, **params);
# make_physics moves what it returns to the device.
TASKS = Registry("task")

BLUR_SIGMA_PER_PIXEL = 1 / 28  # default blur_sigma / image side: 1 px at 28x28, 2.29 px at 64x64


class Quantization(Denoising):
    """Quantization as a deepinv physics: A = identity (the operator methods fit), and a noise
    model that quantizes (``QuantizationNoise``), so ``physics(x)`` gives the quantized image.

    Yeh et al. fit quantized images with A = identity: the step function has zero gradient almost
    everywhere, so it cannot be the operator of a gradient-based search. Being a ``Denoising``,
    it is accepted wherever denoising is (GE's lift, TV, BM3D), with ``noise_model.sigma`` the
    quantization error's std.
    """

    def __init__(self, levels: int = 5, device: str | torch.device = "cpu"):
        super().__init__(QuantizationNoise(levels), device=device)

    @property
    def levels(self) -> int:
        return self.noise_model.levels


class EncoderSensing(Physics):
    """Non-linear sensing by a learned encoder: A(x) = encoder(x), (B, C, H, W) -> (B, m).

    The encoder is referenced, not registered: its parameters are not the physics' parameters
    (``physics.parameters()`` is empty) and ``physics.to(device)`` does not move it. Gradients
    flow through it to x; its owner freezes it and puts it in eval mode.
    """

    def __init__(
        self, encoder: torch.nn.Module, img_size: tuple[int, int, int], noise_model: NoiseModel
    ):
        super().__init__(noise_model=noise_model)
        object.__setattr__(self, "encoder", encoder)  # bypasses nn.Module registration
        self.img_size = img_size

    def A(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.encoder(x)


def make_physics(
    task: str,
    img_shape: tuple[int, int, int],
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    **params: Any,
) -> Physics:
    """Build the degradation ``task`` (one of ``TASKS.names()``) for images of shape (C, H, W).

    Unknown task or parameter names, missing required parameters, values of the wrong type and
    impossible values raise ConfigError. See each task's builder below for its parameters and
    defaults.
    """
    builder = TASKS.get(task)
    check_task_params(task, params)
    check_device(device)
    if len(img_shape) != 3 or min(img_shape) < 1:
        raise ConfigError(f"img_shape must be (C, H, W) with positive sizes, got {img_shape}")
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed}")
    operator_rng = torch.Generator().manual_seed(stream_seed(seed, OPERATOR_STREAM))
    noise_rng = torch.Generator(device).manual_seed(stream_seed(seed, PHYSICS_NOISE_STREAM))
    check_arguments(builder, f"task {task!r}", img_shape, operator_rng, noise_rng, **params)
    physics = builder(tuple(img_shape), operator_rng, noise_rng, **params)
    physics.image_shape = tuple(img_shape)  # what check_measurements compares y with
    return physics.to(device)


def check_measurements(y, physics: Physics, image_shape: tuple[int, ...] | None = None) -> None:
    """Raise ConfigError unless y is a finite floating-point batch (B, ...) of what ``physics``
    measures of images of ``image_shape`` (C, H, W) (default: the shape the physics was made for,
    when :func:`make_physics` made it)."""
    if not isinstance(y, torch.Tensor):
        raise ConfigError(f"measurements y must be a torch.Tensor, got {type(y).__name__}")
    if not y.is_floating_point():
        raise ConfigError(f"measurements y must be floating point, got {y.dtype}")
    image_shape = image_shape or getattr(physics, "image_shape", None)
    if image_shape is not None:
        probe = torch.zeros(1, *image_shape, device=y.device, dtype=y.dtype)
        with torch.no_grad():
            expected = tuple(physics.A(probe).shape[1:])
        if y.dim() < 1 or tuple(y.shape[1:]) != expected:
            raise ConfigError(
                f"measurements y must be (B, {', '.join(map(str, expected))}) for "
                f"this physics, got {tuple(y.shape)}"
            )
    elif y.dim() < 2:
        raise ConfigError(f"measurements y must be a batch (B, ...), got shape {tuple(y.shape)}")
    if len(y) == 0:
        raise ConfigError("measurements y hold no problem (B = 0)")
    if not torch.isfinite(y).all():
        raise ConfigError("the measurements contain NaN or Inf values")


def measurement_rate(physics: Physics, img_shape: tuple[int, int, int]) -> float:
    """m / n for sensing tasks: m measurements of an image of n = C*H*W entries.

    For ``encoder_cs`` this runs the encoder once on a zero image to read m.
    """
    if isinstance(physics, CompressedSensing):
        m = physics._A.shape[0]
    elif isinstance(physics, EncoderSensing):
        param = next(physics.encoder.parameters(), torch.empty(0))
        with torch.no_grad():
            m = physics.A(torch.zeros(1, *img_shape, device=param.device))[0].numel()
    else:
        name = type(physics).__name__
        raise ConfigError(f"measurement_rate applies to cs and encoder_cs, got {name}")
    return m / math.prod(img_shape)


@TASKS.register("denoise")
def _denoise(img_shape, operator_rng, noise_rng, *, noise: str = "gaussian", sigma: float = 0.1):
    """A = identity; ``noise`` "gaussian" (y = x + sigma n) or "speckle" (y = x (1 + sigma n))."""
    noise_models = {"gaussian": GaussianNoise, "speckle": SpeckleNoise}
    if noise not in noise_models:
        raise ConfigError(f"noise must be one of {', '.join(noise_models)}, got {noise!r}")
    check_sigma(sigma)
    return Denoising(noise_models[noise](sigma=sigma, rng=noise_rng), device=noise_rng.device)


@TASKS.register("deblur")
def _deblur(
    img_shape, operator_rng, noise_rng, *, blur_sigma: float | None = None, sigma: float = 0.01
):
    """Isotropic Gaussian blur, circular padding; ``blur_sigma`` in pixels, default min(H, W)/28."""
    _, h, w = img_shape
    if blur_sigma is None:
        blur_sigma = BLUR_SIGMA_PER_PIXEL * min(h, w)
    if not blur_sigma > 0:
        raise ConfigError(f"blur_sigma must be > 0, got {blur_sigma}")
    kernel = gaussian_blur(sigma=(blur_sigma, blur_sigma))  # (1, 1, k, k), sums to 1
    k = kernel.shape[-1]
    if k > min(h, w):
        raise ConfigError(
            f"blur_sigma={blur_sigma} needs a {k}x{k} kernel, larger than the {h}x{w} image"
        )
    return Blur(filter=kernel, padding="circular", noise_model=gaussian(sigma, noise_rng))


@TASKS.register("superres")
def _superres(img_shape, operator_rng, noise_rng, *, factor: int = 2, sigma: float = 0.0):
    """Bicubic anti-aliasing filter, then keep every ``factor``-th pixel: y (B, C, H/f, W/f)."""
    _, h, w = img_shape
    if not _is_int(factor) or factor < 2:
        raise ConfigError(f"factor must be an integer >= 2, got {factor}")
    if h % factor or w % factor:
        raise ConfigError(f"factor must divide the image size {h}x{w}, got {factor}")
    if min(h, w) < 2 * factor:  # the bicubic filter is 4 factor wide: its circular padding wraps
        raise ConfigError(
            f"factor {factor} needs images of at least {2 * factor} pixels a side "
            f"(its bicubic filter is {4 * factor} wide), got {h}x{w}"
        )
    return Downsampling(
        img_size=img_shape,
        factor=factor,
        filter="bicubic",
        padding="circular",
        noise_model=gaussian(sigma, noise_rng),
    )


@TASKS.register("inpaint")
def _inpaint(
    img_shape,
    operator_rng,
    noise_rng,
    *,
    mask: str = "block",
    block: int | None = None,
    missing: float | None = None,
    sigma: float = 0.0,
):
    """Keep the pixels where the mask is 1, zero the others; the same mask for every channel.

    ``mask="block"``: centred square of side ``block`` (default round(30/64 * min(H, W))).
    ``mask="random"``: each pixel missing with probability ``missing`` (default 0.5).
    ``mask="freeform"``: strokes and characters covering about ``missing`` (default 0.2).
    """
    _, h, w = img_shape
    if mask == "block":
        if missing is not None:
            raise ConfigError(
                f"missing applies to random and freeform masks, not 'block', got {missing}"
            )
        keep = block_mask(h, w, default_block(h, w) if block is None else block)
    elif mask in ("random", "freeform"):
        if block is not None:
            raise ConfigError(f"block applies to the block mask, not {mask!r}, got {block}")
        if mask == "random":
            keep = random_mask(h, w, 0.5 if missing is None else missing, operator_rng)
        else:
            keep = freeform_mask(h, w, operator_rng, 0.2 if missing is None else missing)
    else:
        raise ConfigError(f"mask must be one of block, random, freeform, got {mask!r}")
    check_mask(keep)
    return Inpainting(img_shape, mask=keep[None], noise_model=gaussian(sigma, noise_rng))


@TASKS.register("colorize")
def _colorize(img_shape, operator_rng, noise_rng, *, sigma: float = 0.0):
    """RGB image (B, 3, H, W) -> gray observation (B, 1, H, W), the Rec. 601 luma
    0.299 R + 0.587 G + 0.114 B (deepinv's ``Decolorize``), plus Gaussian noise ``sigma``."""
    channels = img_shape[0]
    if channels != 3:
        raise ConfigError(
            f"colorize needs RGB (3-channel) images, got {channels}-channel images: "
            "a gray image has no colour to restore"
        )
    return Decolorize(channels=3, srf="rec601", noise_model=gaussian(sigma, noise_rng))


@TASKS.register("quantize")
def _quantize(img_shape, operator_rng, noise_rng, *, levels: int = 5):
    """y = round(x (k - 1)) / (k - 1), k = ``levels`` per channel (>= 2); fitted with A = identity
    (see ``Quantization``). Deterministic: the seed plays no part."""
    if not _is_int(levels) or levels < 2:
        raise ConfigError(f"levels must be an integer >= 2, got {levels}")
    return Quantization(levels, device=noise_rng.device)


@TASKS.register("cs")
def _cs(img_shape, operator_rng, noise_rng, *, m: int, sigma: float = 0.0):
    """Dense i.i.d. Gaussian sensing matrix (m, n), entries N(0, 1/m); y is (B, m)."""
    n = math.prod(img_shape)
    if not _is_int(m) or not 1 <= m <= n:
        raise ConfigError(f"m must be an integer between 1 and n = C*H*W = {n}, got {m}")
    return CompressedSensing(
        m=m, img_size=img_shape, rng=operator_rng, noise_model=gaussian(sigma, noise_rng)
    )


@TASKS.register("encoder_cs")
def _encoder_cs(
    img_shape, operator_rng, noise_rng, *, encoder: torch.nn.Module, sigma: float = 0.0
):
    """The encoder's code as the measurement, plus Gaussian noise of std ``sigma`` on the code."""
    if not isinstance(encoder, torch.nn.Module):
        raise ConfigError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}")
    return EncoderSensing(encoder, img_shape, gaussian(sigma, noise_rng))


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_task_params(task: str, params: dict[str, Any]) -> None:
    """Reject an unknown task, unknown parameter names (``seed`` and ``device`` included: they
    are not the task's) and missing required ones, naming what the task takes."""
    signature = inspect.signature(TASKS.get(task)).parameters.values()
    options = [p for p in signature if p.kind is inspect.Parameter.KEYWORD_ONLY]
    names = [p.name for p in options]
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ConfigError(
            f"task {task!r} has no parameter {', '.join(unknown)}; it takes {', '.join(names)}"
        )
    missing = [p.name for p in options if p.default is p.empty and p.name not in params]
    if missing:
        raise ConfigError(f"task {task!r} needs parameter {', '.join(missing)}")
