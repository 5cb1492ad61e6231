"""Scalar quantisers of an encoder's code, one per rate, for the codec (``genc compress``).

Coordinate j of a code (B, m) is quantised at ``bits`` b into 2^b uniform bins on [lo_j, hi_j]
(the ``tail`` and 1 - ``tail`` quantiles of the training codes; values outside fall into the end
bins). A bin decodes to the mean of the training codes that fell in it (its centre when none
did), which lowers the error of the wide end bins and of skewed coordinates. Each coordinate has
its own probability table over its bins, the model of the entropy coder.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError

BITS = tuple(range(1, 7))  # the rates a fitted quantiser offers (6: the code's own error)
TAIL = 1e-3
# added to every bin's training count: a bin no training code reached still gets a code word
PSEUDO_COUNT = 0.5


class CodeQuantizer(nn.Module):
    """Per-coordinate quantisers of codes (B, m) at each rate of ``bits``.

    lo, hi: (m,) bin ranges; ``centroids_{b}`` and ``probabilities_{b}``: (m, 2^b) buffers of
    rate b (decoded values and the entropy model: each row sums to 1), all float32."""

    def __init__(self, lo: Tensor, hi: Tensor, bits: tuple[int, ...] = BITS):
        super().__init__()
        if lo.ndim != 1 or lo.shape != hi.shape or not bool((hi > lo).all()):
            raise ConfigError("quantiser ranges must be (m,) tensors with hi > lo everywhere")
        if not bits or any(not 1 <= b <= 16 for b in bits) or len(set(bits)) != len(bits):
            raise ConfigError(f"bits must be distinct integers in 1..16, got {bits}")
        self.bits = tuple(sorted(int(b) for b in bits))
        self.register_buffer("lo", lo.float())
        self.register_buffer("hi", hi.float())
        m = lo.numel()
        for b in self.bits:
            self.register_buffer(f"centroids_{b}", self.centres(b).float())
            self.register_buffer(f"probabilities_{b}", torch.full((m, 2**b), 2.0**-b))

    @property
    def code_dim(self) -> int:
        return self.lo.numel()

    def centres(self, bits: int) -> Tensor:
        """(m, 2^b) bin centres."""
        levels = 2**bits
        lo, hi = self.lo.double(), self.hi.double()
        step = (hi - lo) / levels
        return lo[:, None] + step[:, None] * (torch.arange(levels, dtype=torch.float64) + 0.5)

    def check_bits(self, bits: int) -> None:
        if bits not in self.bits:
            raise ConfigError(
                f"bits must be one of this quantiser's rates {', '.join(map(str, self.bits))}, "
                f"got {bits!r}"
            )

    def quantize(self, code: Tensor, bits: int) -> Tensor:
        """Bin indices (B, m), int64 in [0, 2^b), of codes (B, m)."""
        self.check_bits(bits)
        if code.ndim != 2 or code.shape[1] != self.code_dim:
            raise ConfigError(f"codes must be (B, {self.code_dim}), got {tuple(code.shape)}")
        levels = 2**bits
        lo, hi = self.lo.double(), self.hi.double()
        scaled = (code.double() - lo) / (hi - lo) * levels
        return scaled.floor().clamp(0, levels - 1).long()

    def dequantize(self, index: Tensor, bits: int) -> Tensor:
        """Codes (B, m), float32, of bin indices (B, m)."""
        self.check_bits(bits)
        table = getattr(self, f"centroids_{bits}")
        if index.ndim != 2 or index.shape[1] != self.code_dim:
            raise ConfigError(f"indices must be (B, {self.code_dim}), got {tuple(index.shape)}")
        if bool((index < 0).any()) or bool((index >= table.shape[1]).any()):
            raise ConfigError(f"indices must lie in [0, {table.shape[1]})")
        return table.gather(1, index.T).T.float()

    def probabilities(self, bits: int) -> Tensor:
        """(m, 2^b): the entropy model of rate b (rows sum to 1)."""
        self.check_bits(bits)
        return getattr(self, f"probabilities_{bits}")

    def rate(self, index: Tensor, bits: int) -> Tensor:
        """Ideal code length in bits (B,) of bin indices (B, m) under the entropy model."""
        p = self.probabilities(bits).double().gather(1, index.T).T
        return -torch.log2(p).sum(1)

    @classmethod
    def fit(cls, codes: Tensor, bits: tuple[int, ...] = BITS, tail: float = TAIL):
        """Fit on training codes (N, m): ranges from their quantiles, each bin's centroid and
        probability from the codes in it."""
        if codes.ndim != 2 or codes.shape[0] < 2:
            raise ConfigError(f"fit needs training codes (N >= 2, m), got {tuple(codes.shape)}")
        if not torch.isfinite(codes).all():
            raise ConfigError("the training codes contain NaN or Inf values")
        codes = codes.double()
        lo = torch.quantile(codes, tail, dim=0)
        hi = torch.quantile(codes, 1 - tail, dim=0)
        hi = torch.maximum(hi, lo + 1e-6)  # a constant coordinate still gets a valid range
        quantizer = cls(lo, hi, bits)
        rows = torch.arange(quantizer.code_dim)[:, None]
        for b in quantizer.bits:
            index = quantizer.quantize(codes, b).T  # (m, N)
            counts = torch.zeros(quantizer.code_dim, 2**b, dtype=torch.float64)
            sums = torch.zeros_like(counts)
            counts.index_put_((rows.expand_as(index), index), torch.ones_like(codes.T), True)
            sums.index_put_((rows.expand_as(index), index), codes.T, True)
            centroids = torch.where(counts > 0, sums / counts.clamp(min=1), quantizer.centres(b))
            getattr(quantizer, f"centroids_{b}").copy_(centroids)
            smoothed = counts + PSEUDO_COUNT
            probabilities = smoothed / smoothed.sum(1, keepdim=True)
            getattr(quantizer, f"probabilities_{b}").copy_(probabilities)
        return quantizer
