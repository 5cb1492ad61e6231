"""The compressed-image file (``.genc``): a small header, the range-coded bin indices, a checksum.

Layout (little-endian), format version 2::

    magic "GE" (2 bytes) | format version (1) | model id (6) | bits (1) |
    payload: range-coder words (4 bytes each) | CRC-32 of all before (4)

14 bytes besides the payload: at the rates where generative compression matters (tens of bytes
per image) every header byte is a visible share of the file. The image's size is not stored: the
model id fixes it. The model id is the start of a SHA-256 of the weights that encode and decode
the file (:func:`model_id`), so a file is never decoded by another model. The payload is the
output of ``constriction``'s range coder with one categorical model per code coordinate (the
quantiser's probability tables); its length follows from the file's size. Version 1 files
(``... | model id (6) | channels (1) | height (2) | width (2) | bits (1) | whole words | CRC``)
are still read. Every defect of a file (foreign bytes, a newer version, truncation, a flipped
bit, another model) raises a one-line DataError.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

import constriction
import numpy as np
import torch
from torch import nn

from ..errors import DataError

MAGIC = b"GE"
VERSION = 2
SUFFIX = ".genc"
MODEL_ID_BYTES = 6
_HEADER = struct.Struct("<2sB6sB")
_HEADER_V1 = struct.Struct("<2sB6sBHHB")
_CRC = struct.Struct("<I")
HEADER_BYTES = _HEADER.size  # 10
OVERHEAD_BYTES = HEADER_BYTES + _CRC.size  # bytes of a file besides its payload


@dataclass(frozen=True)
class StreamHeader:
    """What a file says of itself: the model that made it and the rate; ``shape`` (C, H, W) only
    in version 1 files (the model fixes it)."""

    model_id: bytes
    bits: int
    shape: tuple[int, int, int] | None = None


def model_id(modules: dict[str, nn.Module]) -> bytes:
    """Content hash (MODEL_ID_BYTES bytes) of the named modules' state dicts: names, dtypes,
    shapes and values, in a fixed order."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        for key, value in sorted(modules[name].state_dict().items()):
            array = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}.{key}:{array.dtype}:{tuple(array.shape)};".encode())
            digest.update(array.view(torch.uint8).numpy().tobytes() if array.numel() else b"")
    return digest.digest()[:MODEL_ID_BYTES]


def _model(probabilities: np.ndarray):
    return constriction.stream.model.Categorical(perfect=False), np.ascontiguousarray(
        probabilities, dtype=np.float32
    )


def encode_file(header: StreamHeader, symbols: np.ndarray, probabilities: np.ndarray) -> bytes:
    """The file of one image: ``symbols`` (m,) bin indices, ``probabilities`` (m, L) the model
    of each coordinate (rows sum to 1; L = 2^bits)."""
    if symbols.ndim != 1 or probabilities.shape[0] != symbols.size:
        raise DataError(f"{symbols.size} symbols need ({symbols.size}, L) probabilities")
    family, table = _model(probabilities)
    coder = constriction.stream.queue.RangeEncoder()
    coder.encode(symbols.astype(np.int32), family, table)
    payload = coder.get_compressed().astype("<u4").tobytes()
    body = _HEADER.pack(MAGIC, VERSION, header.model_id, header.bits) + payload
    return body + _CRC.pack(zlib.crc32(body))


def read_header(blob: bytes, name: str = "file") -> StreamHeader:
    """The header of a file's bytes, after checking magic, version, length and checksum."""
    if len(blob) < len(MAGIC) or blob[: len(MAGIC)] != MAGIC:
        raise DataError(f"{name} is not a genc compressed file (it does not start with 'GE')")
    if len(blob) >= 3 and blob[2] > VERSION:
        raise DataError(
            f"{name} has format version {blob[2]}, newer than this genc reads ({VERSION}); "
            "upgrade generative-encoder"
        )
    if len(blob) >= 3 and blob[2] < 1:
        raise DataError(f"{name} has an unknown format version {blob[2]}")
    layout = _HEADER_V1 if len(blob) >= 3 and blob[2] == 1 else _HEADER
    overhead = layout.size + _CRC.size
    if len(blob) < overhead or (len(blob) - overhead) % 4:
        raise DataError(f"{name} is truncated or padded ({len(blob)} bytes)")
    body, (crc,) = blob[: -_CRC.size], _CRC.unpack(blob[-_CRC.size :])
    if zlib.crc32(body) != crc:
        raise DataError(f"{name} is corrupted (checksum mismatch)")
    if layout is _HEADER_V1:
        _, _, ident, channels, height, width, bits = layout.unpack(body[: layout.size])
        return StreamHeader(ident, bits, (channels, height, width))
    _, _, ident, bits = layout.unpack(body[: layout.size])
    return StreamHeader(ident, bits)


def decode_file(blob: bytes, probabilities: np.ndarray) -> np.ndarray:
    """The bin indices (m,) of a file already checked by :func:`read_header`."""
    start = _HEADER_V1.size if blob[2] == 1 else HEADER_BYTES
    words = np.frombuffer(blob[start : -_CRC.size], dtype="<u4").astype(np.uint32)
    family, table = _model(probabilities)
    coder = constriction.stream.queue.RangeDecoder(words)
    return np.asarray(coder.decode(family, table), dtype=np.int64)
