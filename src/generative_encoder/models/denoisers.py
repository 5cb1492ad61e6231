"""A noise-level-conditioned denoiser for plug-and-play restoration: deepinv's DRUNet (Zhang et
al., "Plug-and-play image restoration with deep denoiser prior", TPAMI 2021) at a size a CPU
trains in minutes, registered so that a model folder's ``denoiser.json`` can name it.

>>> D = build_network("drunet", channels=1, image_size=28, width=8, blocks=1)
>>> D(torch.rand(2, 1, 28, 28), 0.1).shape
torch.Size([2, 1, 28, 28])
"""

from __future__ import annotations

from deepinv.models import DRUNet
from deepinv.models.base import Denoiser
from torch import Tensor

from ..errors import ConfigError
from .registry import build_network, network

__all__ = ["DRUNetDenoiser", "build_network"]


@network("drunet")
class DRUNetDenoiser(Denoiser):
    """D(x, sigma): x (B, C, S, S) noisy, in [0, 1] up to the noise; sigma a float or (B,) noise
    std on that scale; returns (B, C, S, S). A deepinv ``Denoiser``, so deepinv's ``PnP`` prior
    and optimisers take it as it is. Four scales of ``width``, 2x, 4x, 8x channels with
    ``blocks`` residual blocks each; untrained weights (``pretrained=None``: nothing is
    downloaded). ``image_size`` is recorded so that a model folder can check it; DRUNet pads
    any size itself."""

    def __init__(self, channels: int = 1, image_size: int = 28, width: int = 16, blocks: int = 2):
        super().__init__()
        if width < 1 or blocks < 1:
            raise ConfigError(f"width and blocks must be >= 1, got {width}, {blocks}")
        self.channels, self.image_size = channels, image_size
        self.net = DRUNet(
            in_channels=channels,
            out_channels=channels,
            nc=(width, 2 * width, 4 * width, 8 * width),
            nb=blocks,
            pretrained=None,
        )

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs) -> Tensor:
        if isinstance(sigma, Tensor) and sigma.ndim > 0:
            sigma = sigma.reshape(len(x))  # (B,), however the caller shaped it
        return self.net(x, sigma)
