"""The codec: quantiser, file format, `genc compress` / `genc decompress`, and every damaged-file
case of the "Compressed files" table of docs/bad_inputs.md."""

import json
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from generative_encoder.apps.codec import Codec, compress_files, decompress_files
from generative_encoder.cli import main
from generative_encoder.data import get_dataset, stack_images
from generative_encoder.errors import CheckpointError, ConfigError, DataError
from generative_encoder.eval.metrics import psnr
from generative_encoder.io import bitstream
from generative_encoder.io.checkpoints import load_quantizer, save_quantizer
from generative_encoder.io.images import read_image, write_image
from generative_encoder.io.zoo import shipped_model, shipped_model_dir
from generative_encoder.models.quantizer import CodeQuantizer, TransformQuantizer, fit_quantizer
from generative_encoder.training.codec import fit_codec, training_codes

DOC = Path(__file__).parents[1] / "docs" / "bad_inputs.md"


# --- the quantiser ----------------------------------------------------------------------------


def test_quantiser_bins_decode_to_the_mean_of_their_training_codes():
    codes = torch.tensor([[0.0], [0.1], [0.9], [1.0], [0.4], [0.45]], dtype=torch.float64)
    q = CodeQuantizer.fit(codes, bits=(1, 2), tail=0.0)
    assert q.lo.item() == 0.0 and q.hi.item() == 1.0
    index = q.quantize(codes, 1)
    assert index[:, 0].tolist() == [0, 0, 1, 1, 0, 0]
    # bin 0 holds 0, 0.1, 0.4, 0.45 (mean 0.2375); bin 1 holds 0.9, 1.0 (mean 0.95)
    assert q.dequantize(torch.tensor([[0], [1]]), 1)[:, 0].tolist() == pytest.approx([0.2375, 0.95])
    # probabilities: counts 4 and 2 plus 0.5 each
    assert q.probabilities(1)[0].tolist() == pytest.approx([4.5 / 7, 2.5 / 7])
    # an empty bin decodes to its centre; values outside the range fall in the end bins
    assert q.dequantize(torch.tensor([[1], [2]]), 2)[:, 0].tolist() == pytest.approx([0.425, 0.625])
    assert q.quantize(torch.tensor([[-5.0], [7.0]]), 2)[:, 0].tolist() == [0, 3]


def test_quantiser_error_shrinks_with_the_rate_and_rates_are_checked():
    codes = torch.randn(2000, 8, generator=torch.Generator().manual_seed(0))
    q = CodeQuantizer.fit(codes)
    errors = [((q.dequantize(q.quantize(codes, b), b) - codes) ** 2).mean().item() for b in q.bits]
    assert all(a > 2 * b for a, b in zip(errors, errors[1:]))  # about 4x per bit
    assert errors[-1] < 2e-3
    rates = [q.rate(q.quantize(codes, b), b).mean().item() for b in q.bits]
    assert all(a < b for a, b in zip(rates, rates[1:])) and rates[0] < 8
    with pytest.raises(ConfigError, match="bits must be one of"):
        q.quantize(codes, 7)
    with pytest.raises(ConfigError, match=r"codes must be \(B, 8\)"):
        q.quantize(codes[:, :3], 2)


def test_transform_quantiser_codes_principal_axes_with_one_step():
    """Codes on a line: one axis carries everything, the other costs (almost) no bits; the
    reconstruction error is that of rounding the axis with the rate's step."""
    g = torch.Generator().manual_seed(0)
    t = torch.randn(4000, 1, generator=g, dtype=torch.float64)
    direction = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    codes = t * 3 * direction + 0.01 * torch.randn(4000, 2, generator=g, dtype=torch.float64)
    q = TransformQuantizer.fit(codes, bits=(1, 3, 6))
    assert torch.allclose(q.basis[0].abs().double(), direction[0], atol=1e-3)
    rms = (codes - codes.mean(0)).square().mean().sqrt().item()
    assert q.steps.tolist() == pytest.approx([2.0 * rms, 1.0 * rms, 0.35 * rms], rel=1e-6)
    for b, step in zip(q.bits, q.steps.tolist()):
        index = q.quantize(codes, b)
        error = (q.dequantize(index, b).double() - codes).square().sum(1).mean().item()
        assert error < step**2 / 12 + 1e-3  # uniform rounding of one axis, at most
        rates = q.rate(index, b) / 8  # bytes
        minor = -torch.log2(q.probabilities(b)[1].double().gather(0, index[:, 1])).mean()
        assert minor < 0.05  # the flat axis: one bin, nearly free
    small, large = (q.rate(q.quantize(codes, b), b).mean().item() for b in (1, 6))
    assert small < large
    assert rates.mean() < 2  # under two bytes for rate 6 of a one-dimensional signal


def test_transform_quantiser_beats_the_uniform_one_at_equal_rate():
    """Correlated codes (a few strong axes): at about the same ideal rate, transform coding has
    the lower error; this is what made it the default (module docstring)."""
    g = torch.Generator().manual_seed(1)
    mix = torch.randn(16, 16, generator=g, dtype=torch.float64)
    scales = torch.logspace(0, -2, 16, dtype=torch.float64)
    codes = (torch.randn(3000, 16, generator=g, dtype=torch.float64) * scales) @ mix
    uniform, transform = fit_quantizer(codes, "uniform"), fit_quantizer(codes)

    def curve(q):
        return [
            (
                q.rate(q.quantize(codes, b), b).mean().item(),
                (q.dequantize(q.quantize(codes, b), b).double() - codes).square().mean().item(),
            )
            for b in q.bits
        ]

    for rate, error in curve(uniform)[:3]:
        better = [e for r, e in curve(transform) if r <= rate]
        assert better and min(better) < error
    with pytest.raises(ConfigError, match="codec kind must be one of transform, uniform"):
        fit_quantizer(codes, "vq")


def test_quantiser_file_round_trip_and_damaged_tables_are_refused(tmp_path):
    q = CodeQuantizer.fit(torch.randn(100, 4, generator=torch.Generator().manual_seed(1)), (2, 3))
    save_quantizer(tmp_path, "codec", q)
    back = load_quantizer(tmp_path, "codec")
    assert back.bits == (2, 3)
    for key, value in q.state_dict().items():
        assert torch.equal(value, back.state_dict()[key]), key
    broken = CodeQuantizer.fit(torch.randn(100, 4), (2, 3))
    broken.probabilities_2[0, 0] = 0.0
    save_quantizer(tmp_path, "broken", broken)
    with pytest.raises(CheckpointError, match="not a distribution"):
        load_quantizer(tmp_path, "broken")
    t = TransformQuantizer.fit(torch.randn(100, 4, generator=torch.Generator().manual_seed(2)))
    save_quantizer(tmp_path, "transform", t)
    back = load_quantizer(tmp_path, "transform")
    assert isinstance(back, TransformQuantizer) and back.bits == t.bits
    for key, value in t.state_dict().items():
        assert torch.equal(value, back.state_dict()[key]), key
    config = json.loads((tmp_path / "transform.json").read_text())
    (tmp_path / "transform.json").write_text(json.dumps(config | {"kind": "vq"}))
    with pytest.raises(CheckpointError, match="unknown quantiser kind 'vq'"):
        load_quantizer(tmp_path, "transform")
    (tmp_path / "transform.json").write_text(json.dumps(config | {"bins": [1]}))
    with pytest.raises(CheckpointError, match="'bins' must list one bin count"):
        load_quantizer(tmp_path, "transform")
    with pytest.raises(CheckpointError, match="genc train codec"):
        load_quantizer(tmp_path, "absent")


# --- the file format --------------------------------------------------------------------------


def test_range_coded_symbols_round_trip_and_a_likely_symbol_costs_little():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(16), size=64)
    symbols = np.array([rng.choice(16, p=p) for p in probabilities])
    header = bitstream.StreamHeader(b"abcdef", 4)
    blob = bitstream.encode_file(header, symbols, probabilities)
    assert bitstream.read_header(blob) == header
    assert np.array_equal(bitstream.decode_file(blob, probabilities), symbols)
    ideal = -np.log2(probabilities[np.arange(64), symbols]).sum()
    payload = len(blob) - bitstream.OVERHEAD_BYTES
    assert 8 * payload < ideal + 64  # within two words of the information content
    assert bitstream.OVERHEAD_BYTES == 14


def test_a_version_1_file_still_decodes_and_its_image_size_is_checked(codec, digits):
    """Version 1 stored (C, H, W) after the model id; its files decode as they always did."""
    good = codec.compress(digits[:1], 3)[0]
    ident, bits, payload = good[3:9], good[9], good[10:-4]

    def v1(shape: tuple[int, int, int]) -> bytes:
        head = struct.pack("<2sB6sBHHB", b"GE", 1, ident, *shape, bits)
        return _with_crc(head + payload)

    torch.testing.assert_close(codec.codes([v1((1, 28, 28))]), codec.codes([good]), rtol=0, atol=0)
    assert bitstream.read_header(v1((1, 28, 28))).shape == (1, 28, 28)
    with pytest.raises(DataError, match="holds a 3 x 28 x 28 image, not \\(1, 28, 28\\)"):
        codec.codes([v1((3, 28, 28))])


def test_model_id_changes_with_any_weight():
    net = torch.nn.Linear(3, 2)
    before = bitstream.model_id({"encoder": net})
    assert bitstream.model_id({"encoder": net}) == before and len(before) == 6
    with torch.no_grad():
        net.bias[0] += 1e-6
    assert bitstream.model_id({"encoder": net}) != before


# --- the shipped model's codec ------------------------------------------------------------------


@pytest.fixture(scope="module")
def codec():
    return Codec(shipped_model())


@pytest.fixture(scope="module")
def digits():
    return stack_images(get_dataset("mnist5k", "test"), range(6))


def test_shipped_codec_was_fitted_on_the_training_digits(codec):
    """The committed quantiser is the one `genc train codec` makes from the training split."""
    model = shipped_model()
    refit = fit_quantizer(training_codes(model, get_dataset("mnist5k", "train")))
    assert isinstance(codec.quantizer, TransformQuantizer)
    assert torch.allclose(refit.mean, codec.quantizer.mean, atol=1e-6)
    assert torch.equal(refit.low_3, codec.quantizer.low_3)
    assert torch.allclose(refit.centroids_3, codec.quantizer.centroids_3, atol=1e-5)


def test_files_are_deterministic_small_and_grow_with_the_rate(codec, digits):
    first = codec.compress(digits, 3)
    assert codec.compress(digits, 3) == first
    assert [codec.compress(digits[i : i + 1], 3)[0] for i in range(6)] == first
    sizes = {b: np.mean([len(f) for f in codec.compress(digits, b)]) for b in codec.bits}
    assert all(sizes[a] < sizes[b] for a, b in zip(codec.bits, codec.bits[1:]))
    assert sizes[2] < 40 and sizes[6] < 80  # 784 pixels: below 0.41 and 0.82 bits per pixel


def test_autoencoder_decoding_is_the_autoencoder_of_the_quantised_code(codec, digits):
    model, q = shipped_model(), codec.quantizer
    files = codec.compress(digits, 6)
    x = codec.decompress(files, "autoencoder")
    with torch.no_grad():
        code = model.encoder(digits)
        quantised = model.decoder(q.dequantize(q.quantize(code, 6), 6)).clamp(0, 1)
        exact = model.decoder(code).clamp(0, 1)
    assert torch.allclose(x, quantised, atol=1e-6)
    # the finest rate: within 1 dB of the unquantised code (0.6 dB on 200 test digits)
    assert psnr(exact, digits).mean() - 1 < psnr(x, digits).mean() < psnr(exact, digits).mean()
    assert psnr(x, digits).mean() > 20


def test_ge_decoding_is_the_same_alone_and_in_a_batch_and_fits_the_code(codec, digits):
    files = codec.compress(digits, 4)
    x = codec.decompress(files, "ge", steps=30)
    assert torch.equal(codec.decompress(files[2:3], "ge", steps=30)[0], x[2])
    assert torch.equal(codec.decompress(files[::-1], "ge", steps=30)[0], x[-1])
    assert psnr(x, digits).mean() > 14  # 30 steps only


def test_cli_round_trip_reproduces_the_api(tmp_path, codec, digits, capsys):
    for i, d in enumerate(digits):
        write_image(tmp_path / "in" / f"d{i}.png", d)
    assert main(["compress", str(tmp_path / "in"), "-o", str(tmp_path / "c"), "--bits", "3"]) == 0
    assert "compressed 6 image(s)" in capsys.readouterr().out
    stored = [(tmp_path / "c" / f"d{i}.genc").read_bytes() for i in range(6)]
    pngs = torch.stack([read_image(tmp_path / "in" / f"d{i}.png") for i in range(6)])
    assert stored == codec.compress(pngs, 3)
    argv = ["decompress", str(tmp_path / "c"), "-o", str(tmp_path / "d")]
    assert main(argv + ["--decoder", "autoencoder"]) == 0
    decoded = torch.stack([read_image(tmp_path / "d" / f"d{i}.png") for i in range(6)])
    expected = codec.decompress(stored, "autoencoder")
    assert (decoded - expected).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit PNG
    assert main(argv + ["--decoder", "autoencoder"]) == 0  # a second run keeps the outputs
    assert "kept 6 image(s)" in capsys.readouterr().out


# --- damaged files: the "Compressed files" table -------------------------------------------


@dataclass
class Env:
    f: Path  # files
    out: Path
    good: bytes


@pytest.fixture
def env(tmp_path, codec, digits) -> Env:
    f = tmp_path / "files"
    f.mkdir()
    good = codec.compress(digits[:1], 3)[0]
    return Env(f, tmp_path / "out", good)


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _other_model(root: Path) -> Path:
    folder = root / "other"
    shutil.copytree(shipped_model_dir(), folder)
    refit = CodeQuantizer.fit(torch.randn(500, 64, generator=torch.Generator().manual_seed(3)))
    save_quantizer(folder, "codec", refit)
    return folder


def _no_codec_model(root: Path) -> Path:
    folder = root / "nocodec"
    shutil.copytree(shipped_model_dir(), folder)
    (folder / "codec.json").unlink()
    return folder


def _write(name: str, make: Callable[[Env], bytes]) -> Callable[[Env], list]:
    def argv(e: Env) -> list:
        (e.f / name).write_bytes(make(e))
        return ["decompress", e.f / name, "-o", e.out]

    return argv


def _good_then(name: str, make: Callable[[Env], bytes]) -> Callable[[Env], list]:
    def argv(e: Env) -> list:
        (e.f / "a.genc").write_bytes(e.good)
        (e.f / name).write_bytes(make(e))
        return ["decompress", e.f, "-o", e.out]

    return argv


def _flip(offset: int) -> Callable[[Env], bytes]:
    def make(e: Env) -> bytes:
        blob = bytearray(e.good)
        blob[offset] ^= 0x10
        return bytes(blob)

    return make


@dataclass
class Case:
    input: str
    argv: Callable[[Env], list]
    expect: str


CASES = [
    Case(
        "PNG renamed `.genc`",
        _write("x.genc", lambda e: b"\x89PNG\r\n\x1a\n" + b"\0" * 40),
        "is not a genc compressed file",
    ),
    Case("zero-byte `.genc`", _write("x.genc", lambda e: b""), "is not a genc compressed file"),
    Case(
        "file of a newer format version",
        _write("x.genc", lambda e: _with_crc(e.good[:2] + b"\x03" + e.good[3:-4])),
        "has format version 3, newer than this genc reads (2)",
    ),
    Case(
        "file cut inside its header",
        _write("x.genc", lambda e: e.good[:10]),
        "is truncated or padded",
    ),
    Case("file cut by one byte", _write("x.genc", lambda e: e.good[:-1]), "is truncated or padded"),
    Case(
        "file with four bytes appended",
        _write("x.genc", lambda e: e.good + b"\0\0\0\0"),
        "is corrupted (checksum mismatch)",
    ),
    Case(
        "one bit flipped in the payload",
        _write("x.genc", _flip(bitstream.HEADER_BYTES + 1)),
        "is corrupted (checksum mismatch)",
    ),
    Case(
        "one bit flipped in the model id",
        _write("x.genc", _flip(5)),
        "is corrupted (checksum mismatch)",
    ),
    Case(
        "one bit flipped in the checksum",
        _write("x.genc", _flip(-1)),
        "is corrupted (checksum mismatch)",
    ),
    Case(
        "file made with another model",
        lambda e: ["decompress", e.f / "x.genc", "-o", e.out, "--model", e.f / "other"],
        "was made with another model",
    ),
    Case(
        "damaged file among good ones",
        _good_then("b.genc", lambda e: e.good[:-2]),
        "b.genc is truncated or padded",
    ),
    Case(
        "folder with no `.genc` files",
        lambda e: ["decompress", e.f, "-o", e.out],
        "no .genc files found in",
    ),
    Case(
        "unknown `--decoder`",
        lambda e: ["decompress", e.f / "x.genc", "-o", e.out, "--decoder", "jpeg"],
        "decoder must be one of ge, autoencoder, amortized",
    ),
    Case(
        "`genc compress --bits 9`",
        lambda e: ["compress", e.f / "x.png", "-o", e.out, "--bits", "9"],
        "bits must be one of this quantiser's rates 1, 2, 3, 4, 5, 6, got 9",
    ),
    Case(
        "model without a fitted codec",
        lambda e: ["compress", e.f / "x.png", "-o", e.out, "--model", e.f / "nocodec"],
        "has no codec.json: fit the codec with `genc train codec`",
    ),
    Case(
        "`genc compress` of a file that is not an image",
        lambda e: ["compress", e.f / "x.png", "-o", e.out],
        "cannot identify image file",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.input for c in CASES])
def test_a_damaged_file_gets_one_line_and_nothing_is_decoded(case, env, capsys):
    (env.f / "x.genc").write_bytes(env.good)
    write_image(env.f / "x.png", torch.zeros(1, 28, 28))
    if "another model" in case.input:
        _other_model(env.f)
    if "without a fitted codec" in case.input:
        _no_codec_model(env.f)
    if "no `.genc`" in case.input:
        (env.f / "x.genc").unlink()
    if "not an image" in case.input:
        (env.f / "x.png").write_text("hello")
    try:
        code = main([str(a) for a in case.argv(env)])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("genc: error: "), err
    assert case.expect in lines[0], err
    assert not env.out.exists()  # refused before the output folder is made


def _table() -> list[tuple[str, str]]:
    text = DOC.read_text().split("## Compressed files", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[1].isdigit():
            rows.append((cells[0], cells[2]))
    return rows


def test_the_table_lists_every_damaged_file_case():
    rows = _table()
    assert [r[0] for r in rows] == [c.input for c in CASES]
    for (_, what), case in zip(rows, CASES):
        assert case.expect in what, case.input


def test_corrupted_bytes_never_decode_to_an_image(codec, digits):
    """Every single-bit flip of a file is refused: the checksum covers every byte."""
    good = codec.compress(digits[:1], 2)[0]
    for offset in range(len(good)):
        for bit in range(8):
            blob = bytearray(good)
            blob[offset] ^= 1 << bit
            with pytest.raises(DataError):
                codec.codes([bytes(blob)])


def test_folder_api_writes_only_inside_the_output_folder(tmp_path, codec, digits):
    for i, d in enumerate(digits[:2]):
        write_image(tmp_path / "in" / f"d{i}.png", d)
    summary = compress_files([tmp_path / "in"], tmp_path / "c", codec, 2)
    pngs = torch.stack([read_image(tmp_path / "in" / f"d{i}.png") for i in range(2)])
    assert summary.written == 2
    assert summary.bytes == sum(len(b) for b in codec.compress(pngs, 2))
    decompress_files([tmp_path / "c"], tmp_path / "d", codec, "autoencoder")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["d0.png", "d1.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "d", "in"]


def test_fit_codec_writes_the_quantiser_into_the_model_folder(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(shipped_model_dir(), folder)
    from generative_encoder.io.checkpoints import load_model

    model = load_model(folder)
    q = fit_codec(
        model, torch.utils.data.Subset(get_dataset("mnist5k", "train"), range(64)), bits=(1, 2)
    )
    assert load_quantizer(folder, "codec").bits == (1, 2) == q.bits
    assert Codec(model).model_id != Codec(shipped_model()).model_id


def test_cli_train_codec_writes_into_a_model_folder_never_a_shipped_model(tmp_path, capsys):
    folder = tmp_path / "m"
    shutil.copytree(shipped_model_dir(), folder)
    (folder / "codec.json").unlink()
    assert main(["train", "codec", "--model", str(folder)]) == 0
    assert "fitted on 4500 images" in capsys.readouterr().out
    assert load_quantizer(folder, "codec").bits == (1, 2, 3, 4, 5, 6)
    here = Path.cwd()
    try:
        os.chdir(tmp_path)
        assert main(["train", "codec", "--model", "mnist5k"]) == 2
    finally:
        os.chdir(here)
    assert "model folder mnist5k does not exist" in capsys.readouterr().err
