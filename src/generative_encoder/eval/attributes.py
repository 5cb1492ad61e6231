"""Attribute preservation (the journal's Table 4): does a restored image keep its class or
attribute? A classifier trained on the domain judges each restoration; two methods' verdicts on
the same images make a 2 x 2 table (rows: method A kept / lost, columns: method B kept / lost).

On mnist5k the attribute is the digit's class. On CelebA it is a binary attribute (e.g.
Eyeglasses) read from a file in the format of CelebA's ``list_attr_celeba.txt``::

    202599
    5_o_Clock_Shadow Arched_Eyebrows ... Eyeglasses ... Young
    000001.jpg -1  1 ... -1 ...  1
    ...

(first line: the number of images; second: the attribute names; then one line per image, its
file name and one value per attribute, 1 = present, -1 = absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ..data import NO_LABEL
from ..errors import ConfigError, DataError
from ..training.loop import dataset_name


@dataclass
class AttributeTable:
    """names (A,): attribute names; files (N,): image file names; values (N, A) int8 in {-1, 1}."""

    names: list[str]
    files: list[str]
    values: Tensor

    def column(self, attribute: str) -> dict[str, int]:
        """{file name: 1 if the image has the attribute else 0}."""
        if attribute not in self.names:
            raise ConfigError(
                f"attribute {attribute!r} is not in the attribute file; it has "
                f"{', '.join(self.names)}"
            )
        j = self.names.index(attribute)
        return dict(zip(self.files, (self.values[:, j] > 0).long().tolist()))


def read_attribute_file(path: str | Path) -> AttributeTable:
    """Parse a ``list_attr_celeba.txt``-format file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"attribute file {str(path)!r} does not exist")
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text attribute file") from None
    if len(lines) < 2 or len(lines[0]) != 1 or not lines[0][0].isdigit():
        raise DataError(f"{path}: the first line must be the number of images")
    n, names = int(lines[0][0]), lines[1]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: the attribute names on line 2 repeat")
    files, rows = [], []
    for i, parts in enumerate(lines[2:], start=3):
        if len(parts) != len(names) + 1:
            raise DataError(
                f"{path}, line {i}: expected a file name and {len(names)} values, "
                f"got {len(parts)} fields"
            )
        try:
            values = [int(v) for v in parts[1:]]
        except ValueError:
            raise DataError(f"{path}, line {i}: values must be 1 or -1") from None
        if any(v not in (-1, 1) for v in values):
            raise DataError(f"{path}, line {i}: values must be 1 or -1")
        files.append(parts[0])
        rows.append(values)
    if len(files) != n:
        raise DataError(f"{path}: the first line says {n} images, the file lists {len(files)}")
    if len(set(files)) != len(files):
        raise DataError(f"{path}: some file names are listed twice")
    values = torch.tensor(rows, dtype=torch.int8).view(len(files), len(names))
    return AttributeTable(names=names, files=files, values=values)


def attribute_labels(dataset, table: AttributeTable, attribute: str) -> Tensor:
    """(N,) 0/1 labels of a file-backed data set's images (``dataset.files``, e.g. the
    ``folder`` data set), matched to the table by file name."""
    files = getattr(dataset, "files", None)
    if files is None:
        raise ConfigError(
            f"data set {dataset_name(dataset)} is not made of files; attribute "
            "files label image folders"
        )
    column = table.column(attribute)
    missing = [Path(f).name for f in files if Path(f).name not in column]
    if missing:
        raise DataError(
            f"{len(missing)} image(s) of the data set are not in the attribute file, "
            f"e.g. {missing[0]!r}"
        )
    return torch.tensor([column[Path(f).name] for f in files])


class LabelledImages(Dataset):
    """A data set's images with other labels: items (image, labels[i]); named
    ``"NAME:TAG"`` (NAME: ``name`` or the data set's), which tells cached classifiers apart."""

    def __init__(self, dataset, labels: Tensor, tag: str, name: str | None = None):
        if len(labels) != len(dataset):
            raise ConfigError(f"{len(labels)} labels for {len(dataset)} images")
        self.dataset, self.labels = dataset, labels.long()
        self.name = f"{name or dataset_name(dataset)}:{tag}"
        for attr in ("channels", "image_size", "files"):
            if hasattr(dataset, attr):
                setattr(self, attr, getattr(dataset, attr))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.dataset[i][0], int(self.labels[i])


class RotatedImages(Dataset):
    """Self-supervised labels for a data set without any: item 4i + k is image i turned by
    k x 90 degrees, labelled k (Gidaris et al. 2018). A classifier of these rotations learns the
    domain's features, which makes a domain FID possible on unlabelled images such as faces."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.name = f"{dataset_name(dataset)}:rotation"
        for attr in ("channels", "image_size"):
            if hasattr(dataset, attr):
                setattr(self, attr, getattr(dataset, attr))

    def __len__(self) -> int:
        return 4 * len(self.dataset)

    def __getitem__(self, i: int):
        image, k = self.dataset[i // 4][0], i % 4
        return torch.rot90(image, k, dims=(-2, -1)), k


def feature_training_set(dataset):
    """What a domain classifier for FID trains on: the data set itself when it has labels, else
    its four rotations (:class:`RotatedImages`)."""
    return RotatedImages(dataset) if dataset[0][1] == NO_LABEL else dataset


@torch.no_grad()
def predict(classifier, images: Tensor, batch_size: int = 500) -> Tensor:
    """(N,) the classifier's class of each image (N, C, H, W)."""
    classifier.eval()
    return torch.cat([F.softmax(classifier(b), 1).argmax(1) for b in images.split(batch_size)])


def kept(classifier, restored: Tensor, targets: Tensor) -> Tensor:
    """(N,) bool: whether the classifier puts each restored image in its target class."""
    return predict(classifier, restored) == targets.to(restored.device)


def preservation_table(kept_a: Tensor, kept_b: Tensor) -> Tensor:
    """2 x 2 counts (long): [[A kept & B kept, A kept & B lost], [A lost & B kept, A lost & B
    lost]]; they add up to the number of images."""
    if kept_a.shape != kept_b.shape or kept_a.ndim != 1:
        raise ConfigError(
            f"two (N,) verdicts needed, got {tuple(kept_a.shape)} and {tuple(kept_b.shape)}"
        )
    a, b = kept_a.bool(), kept_b.bool()
    return torch.tensor([[(a & b).sum(), (a & ~b).sum()], [(~a & b).sum(), (~a & ~b).sum()]])


def markdown_2x2(table: Tensor, name_a: str, name_b: str, what: str = "kept") -> str:
    """The table in the journal's Table 4 layout: rows method A, columns method B."""
    lost = "lost"
    return (
        "\n".join(
            [
                f"| | {name_b} {what} | {name_b} {lost} | total |",
                "| --- | ---: | ---: | ---: |",
                f"| **{name_a} {what}** | {table[0, 0]} | {table[0, 1]} | {table[0].sum()} |",
                f"| **{name_a} {lost}** | {table[1, 0]} | {table[1, 1]} | {table[1].sum()} |",
                f"| total | {table[:, 0].sum()} | {table[:, 1].sum()} | {table.sum()} |",
            ]
        )
        + "\n"
    )
