"""A small CNN classifier: judges samples and restorations, and gives domain FID its features."""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import ConfigError
from .layers import check_geometry
from .registry import network


@network("cnn_classifier")
class CNNClassifier(nn.Module):
    """A small CNN: image (N, C, S, S) in [0, 1] -> class logits (N, n_classes).

    Two 3x3 conv + ReLU + 2x2 max-pool blocks (width, 2 width filters), then a hidden layer of
    ``hidden`` units. It judges samples and restorations (does a digit keep its class?) and,
    through ``features(x)`` (N, hidden), is the domain feature network for FID.
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 28,
        n_classes: int = 10,
        width: int = 32,
        hidden: int = 128,
    ):
        super().__init__()
        check_geometry(channels, image_size)
        if n_classes < 1 or width < 1 or hidden < 1:
            raise ConfigError(
                f"n_classes, width and hidden must be >= 1, got {n_classes}, {width}, {hidden}"
            )
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1),
            nn.ReLU(True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, 1, 1),
            nn.ReLU(True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(2 * width * (image_size // 4) ** 2, hidden),
            nn.ReLU(True),
        )
        self.head = nn.Linear(hidden, n_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)  # (N, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (N, n_classes)
