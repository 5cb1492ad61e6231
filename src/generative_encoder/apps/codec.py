"""Generative compression: the Python API behind ``genc compress`` and ``genc decompress``.

An image is stored as its encoder code E(x), quantised per coordinate (the model folder's fitted
quantiser, ``genc train codec``) and range-coded (:mod:`~generative_encoder.io.bitstream`). It is
decoded by GE (z* = argmin ||E(G(z)) - code||^2 + lambda ||z||^2, x = G(z*)), by the
autoencoder's decoder, or by amortized GE (G(R(code)), the latent regressor's guess). A file
decodes to the same image alone or in any batch: GE's random starts are seeded by the file's
bytes.

>>> from generative_encoder.io.zoo import shipped_model
>>> codec = Codec(shipped_model())
>>> files = codec.compress(torch.rand(2, 1, 28, 28), bits=4)
>>> codec.decompress(files, decoder="autoencoder").shape
torch.Size([2, 1, 28, 28])
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from ..io.bitstream import SUFFIX, StreamHeader, decode_file, encode_file, model_id, read_header
from ..io.checkpoints import ModelBundle, load_quantizer, quantizer_name
from ..io.files import atomic_path, ensure_folder
from ..io.images import check_image, read_image, resize_image, write_image
from ..io.names import path_inside
from ..methods import METHODS
from ..methods.latent import select_autoencoder
from ..models.quantizer import Quantizer
from ..physics.seeds import LATENT_STREAM, image_seed
from ..physics.tasks import make_physics
from ..solve import rowwise
from .restore_folder import check_apart, gather_inputs

DECODERS = ("ge", "autoencoder", "amortized")


class Codec:
    """The codec of a model's encoder family ``encoder`` (ge1, vae, aegan, robust, ge0) and its
    fitted quantiser (read from the model folder unless given)."""

    def __init__(
        self, model: ModelBundle, encoder: str = "ge1", quantizer: Quantizer | None = None
    ):
        net, decoder = select_autoencoder(model, encoder)
        self.model, self.encoder_kind, self.encoder = model, encoder, net
        self.quantizer = quantizer or load_quantizer(model.folder, quantizer_name(encoder))
        code_dim = rowwise(net, torch.zeros(1, *model.image_shape)).shape[1]
        if self.quantizer.code_dim != code_dim:
            raise ConfigError(
                f"the quantiser is for codes of {self.quantizer.code_dim} numbers, the "
                f"{encoder} encoder makes {code_dim}; refit it with `genc train codec`"
            )
        networks = {"generator": model.generator, "encoder": net, "quantizer": self.quantizer}
        if decoder is not None:
            networks["decoder"] = decoder
        self.model_id = model_id(networks)

    @property
    def bits(self) -> tuple[int, ...]:
        return self.quantizer.bits

    @torch.no_grad()
    def compress(self, x: Tensor, bits: int) -> list[bytes]:
        """One file's bytes per image of x (B, C, H, W) in [0, 1], H = W = the model's size."""
        self.quantizer.check_bits(bits)
        if tuple(x.shape[1:]) != self.model.image_shape:
            raise DataError(f"images must be {self.model.image_shape}, got {tuple(x.shape[1:])}")
        if not torch.isfinite(x).all():
            raise DataError("the images contain NaN or Inf values")
        index = self.quantizer.quantize(rowwise(self.encoder, x.clamp(0, 1)), bits).numpy()
        probabilities = self.quantizer.probabilities(bits).numpy()
        header = StreamHeader(self.model_id, bits)
        return [encode_file(header, row, probabilities) for row in index]

    def codes(self, blobs: Sequence[bytes], names: Sequence[str] | None = None) -> Tensor:
        """The dequantised codes (B, m) of files' bytes, after checking each belongs here."""
        names = names or [f"file {i}" for i in range(len(blobs))]
        rows = []
        for blob, name in zip(blobs, names):
            header = read_header(blob, name)
            if header.model_id != self.model_id:
                raise DataError(
                    f"{name} was made with another model (id {header.model_id.hex()}, this "
                    f"model's is {self.model_id.hex()})"
                )
            if header.shape is not None and header.shape != self.model.image_shape:
                c, h, w = header.shape
                raise DataError(
                    f"{name} holds a {c} x {h} x {w} image, not {self.model.image_shape}"
                )
            self.quantizer.check_bits(header.bits)
            table = self.quantizer.probabilities(header.bits).numpy()
            index = decode_file(blob, table)
            levels = table.shape[1]
            if (
                index.shape != (self.quantizer.code_dim,)
                or index.min() < 0
                or index.max() >= levels
            ):
                raise DataError(f"{name} is corrupted (its symbols do not decode)")
            rows.append(self.quantizer.dequantize(torch.from_numpy(index)[None], header.bits))
        return torch.cat(rows)

    def decompress(self, blobs: Sequence[bytes], decoder: str = "ge", **options) -> Tensor:
        """Images (B, C, H, W) in [0, 1] of files' bytes. decoder: "ge" (options: the method's,
        e.g. steps, restarts, latent_weight, start="amortized+prior"), "autoencoder" or
        "amortized" (G(R(code)), no search; needs the model's latent regressor)."""
        check_decoder(decoder)
        return self.decode(self.codes(blobs), blobs, decoder, **options)

    def decode(self, code: Tensor, blobs: Sequence[bytes], decoder: str, **options) -> Tensor:
        """Images of checked codes (B, m) (:meth:`codes`) of the files ``blobs``, whose bytes
        seed GE's random starts."""
        physics = make_physics("encoder_cs", self.model.image_shape, encoder=self.encoder)
        method = METHODS.build(decoder, model=self.model, encoder=self.encoder_kind, **options)
        if decoder != "ge":
            return method(code, physics)
        seeds = [image_seed(0, hashlib.sha256(b).hexdigest(), LATENT_STREAM) for b in blobs]
        return method.solve(code, physics, seeds=seeds).x.detach()


def check_decoder(decoder: str) -> None:
    if decoder not in DECODERS:
        raise ConfigError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")


@dataclass
class CodecSummary:
    """What a folder run did: files written, skipped (already there), images resized to the
    model's size, and the bytes written."""

    written: int
    skipped: int
    resized: int
    bytes: int


def _batches(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _pending(files: Sequence[Path], out: Path, suffix: str, overwrite: bool) -> list[Path]:
    return [f for f in files if overwrite or not path_inside(out, f.stem + suffix).exists()]


def compress_files(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    codec: Codec,
    bits: int,
    *,
    batch_size: int = 64,
    overwrite: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> CodecSummary:
    """Compress the images named or found in folders into ``output/NAME.genc``; images not at
    the model's size are center-cropped and resized first. Existing outputs are kept unless
    ``overwrite``."""
    codec.quantizer.check_bits(bits)
    files = gather_inputs(inputs, written_as="{}" + SUFFIX)
    check_apart(inputs, files, output)
    todo = _pending(files, Path(output), SUFFIX, overwrite)
    for f in todo:  # a file that is no image fails before the output folder is made
        check_image(f)
    out = ensure_folder(output)
    side, channels = codec.model.image_shape[1], codec.model.image_shape[0]
    resized = written = 0
    for batch in _batches(todo, batch_size):
        images = [read_image(f, channels=channels) for f in batch]
        resized += sum(im.shape[1:] != (side, side) for im in images)
        blobs = codec.compress(torch.stack([resize_image(im, side) for im in images]), bits)
        for f, blob in zip(batch, blobs):
            with atomic_path(path_inside(out, f.stem + SUFFIX)) as tmp:
                tmp.write_bytes(blob)
            written += len(blob)
        if on_batch:
            on_batch(len(batch))
    return CodecSummary(len(todo), len(files) - len(todo), resized, written)


def _find_compressed(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*" + SUFFIX) if p.is_file())


def decompress_files(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    codec: Codec,
    decoder: str = "ge",
    *,
    batch_size: int = 64,
    overwrite: bool = False,
    on_batch: Callable[[int], None] | None = None,
    **options,
) -> CodecSummary:
    """Decode the ``.genc`` files named or found in folders into ``output/NAME.png``. Every
    file is checked before any is decoded: one bad file stops the run with its name."""
    check_decoder(decoder)
    files = gather_inputs(inputs, _find_compressed, "{}.png", f"{SUFFIX} files")
    check_apart(inputs, files, output)
    blobs = {f: f.read_bytes() for f in files}
    codes = dict(zip(files, codec.codes(list(blobs.values()), [str(f) for f in files])))
    out = ensure_folder(output)
    todo = _pending(files, out, ".png", overwrite)
    for batch in _batches(todo, batch_size):
        code = torch.stack([codes[f] for f in batch])
        x = codec.decode(code, [blobs[f] for f in batch], decoder, **options)
        for f, image in zip(batch, x):
            write_image(path_inside(out, f.stem + ".png"), image)
        if on_batch:
            on_batch(len(batch))
    return CodecSummary(len(todo), len(files) - len(todo), 0, sum(len(b) for b in blobs.values()))
