"""Fitting the codec's quantiser (``genc train codec``): the codes of the training images."""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import Dataset

from ..data import stack_images
from ..io.checkpoints import ModelBundle, quantizer_name, save_quantizer
from ..methods.latent import select_autoencoder
from ..models.quantizer import BITS, Quantizer, fit_quantizer
from ..solve import rowwise


@torch.no_grad()
def training_codes(
    model: ModelBundle,
    dataset: Dataset,
    encoder: str = "ge1",
    batch_size: int = 256,
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """The codes (N, m) of every image of ``dataset`` by the family ``encoder`` of the model."""
    net, _ = select_autoencoder(model, encoder)
    codes = []
    for start in range(0, len(dataset), batch_size):
        batch = stack_images(dataset, range(start, min(start + batch_size, len(dataset))))
        codes.append(rowwise(net, batch).double())
        if on_batch:
            on_batch(len(batch))
    return torch.cat(codes)


def fit_codec(
    model: ModelBundle,
    dataset: Dataset,
    encoder: str = "ge1",
    bits: tuple[int, ...] = BITS,
    kind: str = "transform",
    on_batch: Callable[[int], None] | None = None,
) -> Quantizer:
    """Fit the quantiser (``kind``: transform or uniform, see
    :mod:`~generative_encoder.models.quantizer`) of the family ``encoder`` on the codes of
    ``dataset`` (the model's training images) and write it into the model folder
    (``codec.safetensors`` + ``.json``)."""
    codes = training_codes(model, dataset, encoder, on_batch=on_batch)
    quantizer = fit_quantizer(codes, kind, bits)
    save_quantizer(model.folder, quantizer_name(encoder), quantizer)
    return quantizer
