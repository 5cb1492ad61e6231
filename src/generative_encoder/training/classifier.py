"""A labelled-image classifier, trained on the domain's own labels (e.g. mnist5k digits).

It judges generators and restorations (is a sample confidently a digit? does a restored digit
keep its class?) and supplies the features of the "domain FID".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..io.checkpoints import save_network
from ..models.registry import build_network
from .loop import ImageBank, dataset_name


def train_classifier(
    dataset,
    out: str | Path | None = None,
    *,
    steps: int = 1500,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    on_step: Callable[[int, dict], None] | None = None,
):
    """Train a :class:`~generative_encoder.models.classifier.CNNClassifier` on (image, label)
    items; saves it
    as ``out/classifier.*`` when ``out`` is given. Returns the network in eval mode."""
    bank = ImageBank(dataset)
    labels = bank.labels()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_network(
            "cnn_classifier",
            channels=bank.channels,
            image_size=bank.image_size,
            n_classes=int(labels.max()) + 1,
        )
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        idx = bank.indices(batch_size, rng)
        loss = F.cross_entropy(net(bank.at(idx)), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, {"loss": loss.item()})
    net.eval()
    if out is not None:
        save_network(
            out, "classifier", net, {"steps": steps, "seed": seed, "dataset": dataset_name(dataset)}
        )
    return net


@torch.no_grad()
def confident_fraction(
    classifier, images: Tensor, threshold: float = 0.9, batch_size: int = 500
) -> tuple[float, Tensor]:
    """Fraction of images (N, C, S, S) whose top class probability is >= threshold, and the
    predicted classes (N,)."""
    probs = torch.cat([F.softmax(classifier(x), 1) for x in images.split(batch_size)])
    top, pred = probs.max(1)
    return (top >= threshold).float().mean().item(), pred


def class_balance(pred: Tensor, n_classes: int) -> float:
    """Entropy of the histogram of predicted classes (N,) over ``n_classes``, divided by its
    maximum log(n_classes): 1 when every class is equally frequent, 0 when all are one class.
    A mode-collapsed generator can be confidently one digit; this number says it is not diverse."""
    p = torch.bincount(pred, minlength=n_classes).double() / len(pred)
    p = p[p > 0]
    return max(0.0, float(-(p * p.log()).sum()) / math.log(n_classes))  # not -0.0
