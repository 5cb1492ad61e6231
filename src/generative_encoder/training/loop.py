"""Pieces shared by the training loops: an in-memory image bank and a resumable CSV log."""

from __future__ import annotations

import csv
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from ..files import atomic_path


def check_device(device: str) -> None:
    """Raise ConfigError unless ``device`` names a torch device that this machine has."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be cpu, cuda, cuda:N or mps, got {device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} is not available: torch sees no CUDA GPU")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} is not available on this machine")


def autocast(device: torch.device | str, enabled: bool):
    """bfloat16 autocast on the device's type (CPU or CUDA) when enabled, else a no-op context.

    bfloat16 keeps float32's exponent range, so no gradient scaler is needed."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def dataset_name(dataset) -> str:
    return getattr(dataset, "name", type(dataset).__name__)


class ImageBank:
    """All images of a dataset held as uint8 (N, C, S, S) on ``device``; ``batch`` samples floats.

    Small image domains (MNIST, 64 px faces, rock patches) fit in memory many times over, and
    indexing a tensor is far cheaper per step than a DataLoader on a 2-core machine. On a GPU the
    whole bank lives in GPU memory (uint8: 4500 MNIST digits take 3.5 MB, 100k 64 px RGB faces
    1.2 GB), so no batch crosses the host bus and there is nothing to pin; only the (n,) indices
    drawn on the CPU generator are copied per batch.
    """

    def __init__(self, dataset, device: torch.device | str = "cpu"):
        self.name = dataset_name(dataset)
        if len(dataset) == 0:
            raise DataError(f"dataset {self.name} is empty")
        items = [dataset[i] for i in range(len(dataset))]  # one pass: a folder decodes each file
        self.images = (torch.stack([image for image, _ in items]) * 255).round().to(
            torch.uint8).to(device)
        self._labels = torch.tensor([int(label) for _, label in items]).to(device)
        _, self.channels, self.image_size, width = self.images.shape
        if width != self.image_size:
            raise DataError(f"images must be square, got {tuple(self.images.shape[1:])}")

    def __len__(self) -> int:
        return len(self.images)

    def labels(self) -> Tensor:
        """The class labels (N,) int64 of the images, on the bank's device; DataError if any is
        missing (label < 0, as in a folder of unlabelled images)."""
        if (self._labels < 0).any():
            raise DataError(f"dataset {self.name} has unlabelled images")
        return self._labels

    def indices(self, n: int, rng: torch.Generator) -> Tensor:
        """n indices (n,) drawn uniformly with replacement, on the bank's device."""
        return torch.randint(len(self.images), (n,), generator=rng).to(self.images.device)

    def at(self, idx: Tensor) -> Tensor:
        """The images at ``idx`` (n,) as (n, C, S, S) float in [0, 1]."""
        return self.images[idx].float() / 255

    def batch(self, n: int, rng: torch.Generator) -> Tensor:
        """n images drawn uniformly with replacement, (n, C, S, S) float in [0, 1]."""
        return self.at(self.indices(n, rng))


class CsvLog:
    """Append-only CSV log; on resume, rows after step ``keep_until`` are dropped first, and so is
    a last row that a killed run left half-written."""

    def __init__(self, path: Path, fields: list[str], keep_until: int = 0):
        self.path, self.fields = Path(path), fields
        rows = []
        if keep_until > 0 and self.path.exists():
            with self.path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if _complete(r, fields)
                        and int(r["step"]) <= keep_until]
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fields)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)


def _complete(row: dict, fields: list[str]) -> bool:
    """Whether a logged row has every field (a killed run may have written part of its last)."""
    return list(row) == fields and None not in row.values() and row["step"].isdigit()
