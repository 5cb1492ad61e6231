"""Frechet distances between image sets, through torchmetrics' ``FrechetInceptionDistance`` with a
chosen feature network (no hand-written matrix square root).

Two feature networks:

- **domain FID** (the default): the hidden layer of a small classifier the project trains on the
  domain's own labels (mnist5k's digits, or a binary CelebA attribute read from a
  ``list_attr_celeba.txt`` file), see :func:`domain_classifier`. Its numbers are comparable only
  with other domain FIDs from the same classifier, never with published Inception FIDs.
- **Inception FID**: torchvision's Inception v3 (2048-d pool features) with ImageNet weights from
  a ``.safetensors`` file the user points to. Nothing is downloaded, and pickled ``.pth`` files
  are refused like every other pickle in this project; convert torchvision's file once with
  ``safetensors.torch.save_file(torch.load("inception_v3_google-0cc3c7bd.pth",
  weights_only=True), "inception_v3.safetensors")``. Even then the numbers differ a little from
  the TF-Inception FIDs that papers report (other weights, other resizing).

With a custom feature module torchmetrics needs no ``torch-fidelity`` and works offline.

>>> import torch
>>> feats = FeatureNet(torch.nn.Flatten(), num_features=4)
>>> x = torch.rand(50, 1, 2, 2)
>>> round(frechet_distance(x, x, feats), 6)
0.0
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from ..errors import ConfigError
from ..io.checkpoints import load_network, load_tensors, read_json
from ..training.classifier import train_classifier
from ..training.loop import dataset_name

INCEPTION_SIZE = 299
INCEPTION_FEATURES = 2048
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLASSIFIER_NAME = "classifier"
FEATURE_KINDS = ("classifier", "inception")


class FeatureNet(nn.Module):
    """Images (N, C, H, W) in [0, 1] -> features (N, num_features), always in eval mode and
    without gradients. ``net`` is either a module whose ``features(x)`` gives the features (the
    project's classifiers) or a module whose output is the features."""

    def __init__(self, net: nn.Module, num_features: int, label: str = "features"):
        super().__init__()
        self.net, self.num_features, self.label = net, int(num_features), label

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        self.net.eval()
        extract = getattr(self.net, "features", self.net)
        return extract(x.float()).flatten(1)


def classifier_features(classifier: nn.Module) -> FeatureNet:
    """The domain feature network: a
    :class:`~generative_encoder.models.classifier.CNNClassifier`'s hidden
    layer (``features()``)."""
    return FeatureNet(classifier, classifier.kwargs["hidden"], label="domain")


class _Inception(nn.Module):
    """torchvision's Inception v3 up to its 2048-d average pool, taking images in [0, 1]."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = F.interpolate(
            x,
            size=(INCEPTION_SIZE, INCEPTION_SIZE),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        return self.net((x - self.mean) / self.std)


def inception_features(weights: str | Path) -> FeatureNet:
    """torchvision's Inception v3 with the ImageNet weights in ``weights`` (a ``.safetensors``
    file of its state dict); the features are its 2048-d pool output."""
    from torchvision.models import inception_v3

    weights = Path(weights)
    if weights.suffix.lower() != ".safetensors":
        raise ConfigError(
            f"Inception weights must be a .safetensors file, got {str(weights)!r}; pickled .pth "
            "files are refused. Convert torchvision's file once with safetensors.torch.save_file("
            "torch.load(PTH, weights_only=True), 'inception_v3.safetensors')"
        )
    if not weights.is_file():
        raise ConfigError(
            f"Inception weights file {str(weights)!r} does not exist (nothing is "
            "downloaded: give the path of torchvision's inception_v3 weights "
            "converted to .safetensors)"
        )
    net = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    state = load_tensors(weights)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).strip().splitlines()[:2])
        raise ConfigError(
            f"{weights} is not torchvision's inception_v3 state dict: {first}"
        ) from None
    net.fc = nn.Identity()
    return FeatureNet(_Inception(net.eval()), INCEPTION_FEATURES, label="inception")


def domain_classifier(dataset, folder: str | Path, *, steps: int = 1500, seed: int = 0):
    """The classifier of ``folder/classifier.*`` if it was trained on ``dataset`` with these
    settings, else one trained now (:func:`~generative_encoder.training.classifier
    .train_classifier`) and saved there. A folder holding a classifier trained otherwise is an
    error, never overwritten."""
    folder = Path(folder)
    wanted = {"dataset": dataset_name(dataset), "steps": steps, "seed": seed}
    config = folder / f"{CLASSIFIER_NAME}.json"
    if config.is_file():
        meta = read_json(config).get("meta", {})
        if {k: meta.get(k) for k in wanted} != wanted:
            raise ConfigError(
                f"{folder} holds a classifier trained with "
                f"{ {k: meta.get(k) for k in wanted} }, not {wanted}; point "
                "classifier_dir elsewhere or delete it"
            )
        return load_network(folder, CLASSIFIER_NAME)
    return train_classifier(dataset, folder, steps=steps, seed=seed)


class FIDScorer:
    """Frechet distances of several image sets to one reference set, whose statistics are
    computed once. ``score(images)`` returns a float."""

    def __init__(self, features: FeatureNet, reference: Tensor, batch_size: int = 256):
        self.batch_size = batch_size
        self.metric = FrechetInceptionDistance(
            feature=features, reset_real_features=False, normalize=True
        )
        self.n_reference = len(reference)
        _check_set(reference, "reference")
        for batch in reference.split(batch_size):
            self.metric.update(batch, real=True)

    def score(self, images: Tensor) -> float:
        _check_set(images, "scored")
        self.metric.reset()  # keeps the reference statistics
        for batch in images.split(self.batch_size):
            self.metric.update(batch, real=False)
        return float(self.metric.compute())


def frechet_distance(
    real: Tensor, fake: Tensor, features: FeatureNet, batch_size: int = 256
) -> float:
    """The Frechet distance between the feature statistics of two image sets (N, C, H, W) in
    [0, 1], each of at least 2 images."""
    return FIDScorer(features, real, batch_size).score(fake)


def _check_set(images: Tensor, what: str) -> None:
    if images.ndim != 4 or len(images) < 2:
        raise ConfigError(
            f"FID needs a (N, C, H, W) set of at least 2 {what} images, got shape "
            f"{tuple(images.shape)}"
        )
