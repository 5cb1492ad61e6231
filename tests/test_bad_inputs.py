"""Bad input through the ``genc`` command line: every case gets one line ``genc: error: ...`` and
exit code 2, or a documented conversion and exit code 0; never a traceback.

Each case here is one row of ``docs/bad_inputs.md``; ``test_the_table_lists_every_case`` keeps
the two in step.
"""

import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tifffile
from PIL import Image

from generative_encoder.cli import main
from generative_encoder.data import get_dataset
from generative_encoder.io.checkpoints import (
    load_network,
    save_network,
    save_tensors,
    write_model_info,
)
from generative_encoder.models.registry import build_network
from generative_encoder.training import GANConfig, train_gan

DOC = Path(__file__).parents[1] / "docs" / "bad_inputs.md"
NAME_RULE = "name must use only letters, digits, '-', '_' and '.' (it names files)"
SIDE = 28  # the test models' image side


# --- inputs and models ---------------------------------------------------------------------------


def _encoded(image: Image.Image, format: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **kwargs)
    return buffer.getvalue()


BENCH = {"n_images": 1, "tasks": [{"name": "noisy", "task": "denoise"}], "methods": ["identity"]}


def _bench_task(**change):
    return BENCH | {"tasks": [BENCH["tasks"][0] | change]}


BAD_SPECS = {
    "spec_name_path.json": _bench_task(name="../../photo"),
    "spec_name_abs.json": _bench_task(name="/abs/photo"),
    "spec_name_hidden.json": _bench_task(name=".hidden"),
    "spec_name_long.json": _bench_task(name="x" * 200),
    "spec_method_path.json": BENCH | {"methods": ["../identity"]},
    "spec_same_name.json": BENCH
    | {"tasks": [{"name": "a", "task": "denoise"}, {"name": "a", "task": "inpaint"}]},
    "spec_case_names.json": BENCH
    | {"tasks": [{"name": "Noisy", "task": "denoise"}, {"name": "noisy", "task": "inpaint"}]},
    "spec_method_twice.json": BENCH | {"methods": ["identity", "identity"]},
    "spec_null.json": None,
    "spec_n_text.json": BENCH | {"n_images": "ten"},
    "spec_n_float.json": BENCH | {"n_images": 2.5},
    "spec_first_negative.json": BENCH | {"first_image": -1},
    "spec_seed_text.json": BENCH | {"seed": "x"},
    "spec_methods_string.json": BENCH | {"methods": "identity"},
    "spec_tasks_string.json": BENCH | {"tasks": "denoise"},
    "spec_task_string.json": BENCH | {"tasks": ["denoise"]},
    "spec_task_key.json": _bench_task(param={}),
    "spec_params_string.json": _bench_task(params="sigma=0.1"),
    "spec_params_seed.json": _bench_task(params={"seed": 1}),
    "spec_data_options_list.json": BENCH | {"data_options": [1]},
    "spec_options_string.json": BENCH | {"method_options": {"ge": "steps=3"}},
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """One folder of odd files, named by what they are."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)
    rgb = np.stack([gray, 255 - gray, gray], -1)
    Image.fromarray(gray).save(d / "gray.png")
    Image.fromarray(rgb).save(d / "rgb.png")
    (d / "text.png").write_text("not an image at all\n")
    (d / "empty.png").write_bytes(b"")
    png = _encoded(Image.fromarray(gray), "PNG")
    (d / "cut.png").write_bytes(png[: len(png) // 2])
    jpeg = _encoded(Image.fromarray(rgb), "JPEG")
    (d / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    Image.fromarray(gray.astype(np.uint16) * 257).save(d / "deep16.png")
    Image.fromarray(rgb).convert("P").save(d / "palette.png")
    Image.fromarray(np.dstack([rgb, gray])).save(d / "rgba.png")
    Image.fromarray(np.stack([gray, gray], -1), mode="LA").save(d / "gray_alpha.png")
    Image.fromarray(gray).convert("1").save(d / "bilevel.png")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    tifffile.imwrite(d / "rgb16.tif", rgb.astype(np.uint16) * 257)
    tifffile.imwrite(d / "pages.tif", np.stack([gray, gray, gray]), photometric="minisblack")
    Image.fromarray(np.full((SIDE, SIDE), np.nan, np.float32), mode="F").save(d / "nan.tif")
    inf = gray.astype(np.float32) / 255
    inf[3, 3] = np.inf
    Image.fromarray(inf, mode="F").save(d / "inf.tif")
    tifffile.imwrite(d / "float64.tif", gray.astype(np.float64))
    Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8)).save(d / "wide40x50.png")
    Image.fromarray(np.full((SIDE, SIDE), 255, np.uint8)).save(d / "mask_white.png")
    Image.fromarray(np.zeros((SIDE, SIDE), np.uint8)).save(d / "mask_black.png")
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(d / "mask20.png")
    (d / "model.pt").write_bytes(b"\x80\x04K\x00.")  # a pickle
    (d / "a_file").write_text("a file, not a folder\n")
    (d / "fifo").mkdir()
    os.mkfifo(d / "fifo" / "pipe.png")
    (d / "badname").mkdir()
    (d / "badname" / os.fsdecode(b"bad\xff.png")).write_bytes(png)
    (d / "no_images").mkdir()
    (d / "no_images" / "notes.txt").write_text("no images here\n")
    mixed = d / "mixed"
    mixed.mkdir()
    for name in ("a.png", "b.png", "d.png"):
        Image.fromarray(gray).save(mixed / name)
    (mixed / "c.png").write_bytes(png[: len(png) // 2])
    for sub, suffix in (("x", ".png"), ("y", ".jpg")):
        (d / "same_name" / sub).mkdir(parents=True)
        Image.fromarray(gray).save(d / "same_name" / sub / f"digit{suffix}")
    (d / "spec_unknown_key.json").write_text(
        json.dumps({"tasks": [{"task": "denoise"}], "colour": "red"})
    )
    (d / "spec_magic.json").write_text(
        json.dumps({"tasks": [{"task": "denoise"}], "methods": ["magic"]})
    )
    (d / "spec_mnist.json").write_text(
        json.dumps({"n_images": 2, "tasks": [{"task": "denoise"}], "methods": ["identity"]})
    )
    (d / "spec_broken.json").write_text('{"tasks": [')
    for name, spec in BAD_SPECS.items():
        (d / name).write_text(json.dumps(spec))
    (d / "spec_nan.json").write_text(
        json.dumps(BENCH).replace('"noisy", ', '"noisy", "params": {"sigma": NaN}, ')
    )
    (d / "spec_inf.json").write_text(
        json.dumps(BENCH | {"method_options": {"ge": {"lr": float("inf")}}})
    )
    (d / "spec_deep.json").write_text('{"tasks": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (d / "spec_beyond.json").write_text(json.dumps(BENCH | {"first_image": 499, "n_images": 2}))
    (d / "spec_latin1.json").write_bytes(b'{"tasks": [{"task": "d\xe9noise"}]}')
    return d


def _variant(source: Path, folder: Path, change: Callable[[Path], None]) -> Path:
    shutil.copytree(source, folder)
    change(folder)
    return folder


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


@pytest.fixture(scope="module")
def models(tiny_model_dir, inputs, tmp_path_factory) -> dict[str, Path]:
    """The 1 x 28 x 28 test model, a 3 x 28 x 28 one, and broken copies of the first."""
    root = tmp_path_factory.mktemp("models")
    colour = root / "colour_images"
    colour.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(
            colour / f"c{i}.png"
        )
    train_gan(
        get_dataset("folder", "train", root=colour, size=SIDE, channels=3, test_size=2),
        root / "rgb",
        GANConfig(steps=4, batch_size=8, latent_dim=8, width=8, checkpoint_every=4, sample_every=4),
    )

    def drop(*names):
        return lambda p: [(p / f"{n}.{s}").unlink() for n in names for s in ("json", "safetensors")]

    def pickled_generator(p):
        (p / "generator.safetensors").rename(p / "generator.pt")

    def garbage_weights(p):
        (p / "generator.safetensors").write_bytes(b"\x00" * 100)

    def other_width(p):
        _edit_json(p / "generator.json", lambda c: c["kwargs"].update(width=8))

    def kwarg(name, **changes):
        return lambda p: _edit_json(p / f"{name}.json", lambda c: c["kwargs"].update(changes))

    def swap_encoder_in(p):
        for suffix in ("json", "safetensors"):
            shutil.copyfile(p / f"encoder.{suffix}", p / f"generator.{suffix}")

    def tensors(name, key, change):
        def rewrite(p):
            state = dict(load_network(p, name).state_dict())
            state[key] = change(state[key].clone())
            save_tensors(p / f"{name}.safetensors", state)

        return rewrite

    def first_nan(t):
        t.view(-1)[0] = math.nan
        return t

    geometry = dict(channels=1, image_size=SIDE)

    def no_image_size(p):
        _edit_json(p / "model.json", lambda c: c.pop("image_size"))

    def damaged_state(p):
        data = (p / "gan_state.safetensors").read_bytes()
        (p / "gan_state.safetensors").write_bytes(data[: len(data) // 3])

    g = tiny_model_dir
    return {
        "gray": g,
        "rgb": root / "rgb",
        "no_generator": _variant(g, root / "no_generator", drop("generator")),
        "no_encoder": _variant(g, root / "no_encoder", drop("encoder", "decoder")),
        "generator_pt": _variant(g, root / "generator_pt", pickled_generator),
        "size32": _variant(g, root / "size32", lambda p: write_model_info(p, image_size=32)),
        "unknown_arch": _variant(
            g,
            root / "unknown_arch",
            lambda p: _edit_json(p / "generator.json", lambda c: c.update(arch="stylegan9")),
        ),
        "latent_str": _variant(
            g,
            root / "latent_str",
            lambda p: _edit_json(p / "model.json", lambda c: c.update(latent_dim="sixteen")),
        ),
        "width_str": _variant(
            g,
            root / "width_str",
            lambda p: _edit_json(p / "generator.json", lambda c: c["kwargs"].update(width="wide")),
        ),
        "no_image_size": _variant(g, root / "no_image_size", no_image_size),
        "json_broken": _variant(
            g, root / "json_broken", lambda p: (p / "model.json").write_text("{oops")
        ),
        "garbage_weights": _variant(g, root / "garbage_weights", garbage_weights),
        "other_width": _variant(g, root / "other_width", other_width),
        "width_null": _variant(g, root / "width_null", kwarg("generator", width=None)),
        "width_negative": _variant(g, root / "width_negative", kwarg("generator", width=-8)),
        "width_huge": _variant(g, root / "width_huge", kwarg("generator", width=100000)),
        "width_4096": _variant(g, root / "width_4096", kwarg("generator", width=4096)),
        "depth_text": _variant(g, root / "depth_text", kwarg("encoder", depth="two")),
        "decoder_too_deep": _variant(
            g, root / "decoder_too_deep", kwarg("decoder", encoder_depth=5)
        ),
        "encoder_as_generator": _variant(g, root / "encoder_as_generator", swap_encoder_in),
        "decoder_code": _variant(
            g,
            root / "decoder_code",
            lambda p: save_network(
                p, "decoder", build_network("conv_decoder", code_dim=7, width=8, **geometry)
            ),
        ),
        "latent8": _variant(
            g,
            root / "latent8",
            lambda p: save_network(
                p, "generator", build_network("dcgan_generator", latent_dim=8, width=8, **geometry)
            ),
        ),
        "nan_weight": _variant(
            g, root / "nan_weight", tensors("generator", "blocks.0.weight", first_nan)
        ),
        "inf_statistic": _variant(
            g,
            root / "inf_statistic",
            tensors("generator", "stem.2.running_var", lambda t: t + math.inf),
        ),
        "int_weight": _variant(
            g, root / "int_weight", tensors("generator", "stem.0.weight", lambda t: t.long())
        ),
        "damaged_state": _variant(g, root / "damaged_state", damaged_state),
    }


@dataclass
class Env:
    f: Path  # the inputs folder
    m: dict[str, Path]  # model folders
    out: Path  # a fresh output folder (not made yet)


@pytest.fixture
def env(inputs, models, tmp_path) -> Env:
    return Env(inputs, models, tmp_path / "out")


# --- the cases -----------------------------------------------------------------------------------


def _remove(path: Path) -> None:
    path.unlink()


def restore(
    *inputs: str,
    model: str = "gray",
    out: str | None = None,
    task: str | None = "denoise",
    method: str = "identity",
    extra: tuple = (),
) -> Callable[[Env], list]:
    """argv of ``genc restore`` of files in the inputs folder; ``model`` names a model of
    ``models`` or else a path in the inputs folder, as ``out`` does (default: a fresh folder)."""
    return lambda e: [
        "restore",
        *(e.f / i for i in inputs),
        "-o",
        e.f / out if out else e.out,
        "--model",
        e.m.get(model, e.f / model),
        "--method",
        method,
        *extra,
        *(["--task", task] if task else []),
    ]


def train_gan_argv(
    *extra: str, data: tuple = ("--data", "mnist5k"), out: str | None = None
) -> Callable[[Env], list]:
    return lambda e: [
        "train",
        "gan",
        *data,
        "--out",
        e.f / out if out else e.out,
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--latent-dim",
        "8",
        "--width",
        "8",
        *extra,
    ]


def bench(spec: str, model: str = "gray") -> Callable[[Env], list]:
    return lambda e: ["bench", e.f / spec, "--model", e.m[model], "--out", e.out]


@dataclass
class Case:
    input: str  # the first column of the table
    argv: Callable[[Env], list]
    code: int  # 2: refused with one line; 0: converted
    expect: str  # in the error line (code 2) or in stdout (code 0); also in the table's row
    before: Callable[[Env], list] | None = None  # a command run first, to set the stage
    after_bar: bool = False  # the error comes after the progress bar started


NOTE_28 = "were not 28 x 28 and were center-cropped and resized"
DONE = "restored 1 image(s)"

CASES = [
    # image files
    Case("text file named `.png`", restore("text.png"), 2, "cannot identify image file"),
    Case("zero-byte file", restore("empty.png"), 2, "cannot identify image file"),
    Case("truncated PNG", restore("cut.png"), 2, "image file is truncated"),
    Case("truncated JPEG", restore("cut.jpg"), 2, "cannot read image"),
    Case(
        "float TIFF (mode F) of NaN",
        restore("nan.tif"),
        2,
        "floating-point images (mode F) are not supported",
    ),
    Case(
        "float TIFF (mode F) holding Inf",
        restore("inf.tif"),
        2,
        "floating-point images (mode F) are not supported",
    ),
    Case("float64 TIFF", restore("float64.tif"), 2, "cannot identify image file"),
    Case("input that does not exist", restore("nowhere.png"), 2, "does not exist"),
    Case("folder with no images", restore("no_images"), 2, "no images found in"),
    Case(
        "folder with one truncated file among good ones", restore("mixed"), 2, "cannot read image"
    ),
    Case(
        "two inputs with one name (`x/digit.png`, `y/digit.jpg`)",
        restore("same_name"),
        2,
        "would both be written to restored/digit.png",
    ),
    # conversions
    Case("16-bit gray PNG", restore("deep16.png"), 0, DONE),
    Case("16-bit RGB TIFF, RGB model", restore("rgb16.tif", model="rgb"), 0, DONE),
    Case("palette PNG", restore("palette.png"), 0, DONE),
    Case("RGBA PNG, gray model", restore("rgba.png"), 0, DONE),
    Case("gray + alpha PNG", restore("gray_alpha.png"), 0, DONE),
    Case("1-bit PNG", restore("bilevel.png"), 0, DONE),
    Case("CMYK JPEG", restore("cmyk.jpg"), 0, DONE),
    Case("RGB image, gray model", restore("rgb.png"), 0, DONE),
    Case("gray image, RGB model", restore("gray.png", model="rgb"), 0, DONE),
    Case("multi-page TIFF", restore("pages.tif"), 0, DONE),
    Case(
        "image of the wrong size (40 x 50 for a 28 px model)", restore("wide40x50.png"), 0, NOTE_28
    ),
    Case(
        "`superres` observation not at the low resolution (28 px for factor 2)",
        restore("gray.png", task="superres", method="bicubic"),
        0,
        "were not 14 x 14 and were center-cropped and resized",
    ),
    # model folders
    Case(
        "model folder that does not exist",
        restore("gray.png", model="nowhere"),
        2,
        "model folder {f}/nowhere does not exist",
    ),
    Case(
        "`.pt` file as the model",
        restore("gray.png", model="model.pt"),
        2,
        "refusing to load {f}/model.pt: .pt files are pickles that can run code",
    ),
    Case(
        "model folder without a generator",
        restore("gray.png", model="no_generator"),
        2,
        "has no generator",
    ),
    Case(
        "`generator.pt` in place of `generator.safetensors`",
        restore("gray.png", model="generator_pt"),
        2,
        "missing file",
    ),
    Case(
        "model folder without an encoder, `--method ge`",
        restore("gray.png", model="no_encoder", method="ge"),
        2,
        "has no encoder",
    ),
    Case(
        "model folder without encoder and decoder, `--method autoencoder`",
        restore("gray.png", model="no_encoder", method="autoencoder"),
        2,
        "has no encoder, decoder",
    ),
    Case(
        "`model.json` image size (32) not the networks' (28)",
        restore("gray.png", model="size32"),
        2,
        "model.json says 1-channel 32 px",
    ),
    Case(
        "unknown architecture in `generator.json`",
        restore("gray.png", model="unknown_arch"),
        2,
        "unknown architecture 'stylegan9'",
    ),
    Case(
        "wrongly typed key in `model.json`",
        restore("gray.png", model="latent_str"),
        2,
        "key 'latent_dim' must be int, got 'sixteen'",
    ),
    Case(
        "missing key in `model.json`",
        restore("gray.png", model="no_image_size"),
        2,
        "key 'image_size' must be int, got None",
    ),
    Case(
        "wrongly typed network argument in `generator.json`",
        restore("gray.png", model="width_str"),
        2,
        "kwarg 'width' must be int, got 'wide'",
    ),
    Case(
        "`model.json` that is not JSON",
        restore("gray.png", model="json_broken"),
        2,
        "is not valid JSON",
    ),
    Case(
        "`generator.safetensors` that is not safetensors",
        restore("gray.png", model="garbage_weights"),
        2,
        "is not a readable .safetensors file",
    ),
    Case(
        "weights that do not fit their JSON",
        restore("gray.png", model="other_width"),
        2,
        "does not fit its JSON config",
    ),
    Case(
        '`"width": null` in `generator.json`',
        restore("gray.png", model="width_null"),
        2,
        "generator.json: kwarg 'width' must be int, got None",
    ),
    Case(
        "negative width in `generator.json`",
        restore("gray.png", model="width_negative"),
        2,
        "generator.json: kwarg 'width' must be in 1..4096, got -8",
    ),
    Case(
        '`"width": 100000` in `generator.json` (gigabytes of weights)',
        restore("gray.png", model="width_huge"),
        2,
        "generator.json: kwarg 'width' must be in 1..4096, got 100000",
    ),
    Case(
        'network arguments that make over 2^28 numbers (`"width": 4096`)',
        restore("gray.png", model="width_4096"),
        2,
        "make a dcgan_generator of 543,408,131 numbers, more than the 268,435,456",
    ),
    Case(
        '`"depth": "two"` in `encoder.json`',
        restore("gray.png", model="depth_text"),
        2,
        "encoder.json: kwarg 'depth' must be int or None, got 'two'",
    ),
    Case(
        'decoder deeper than the image (`"encoder_depth": 5` at 28 px)',
        restore("gray.png", model="decoder_too_deep"),
        2,
        "decoder.json: bad kwargs for conv_decoder: encoder_depth must be in 1..4, got 5",
    ),
    Case(
        "encoder files copied as `generator.json`/`.safetensors`",
        restore("gray.png", model="encoder_as_generator"),
        2,
        "generator.json: 'arch' must be one of began_generator, dcgan_generator, pgan_generator"
        " for this file, got 'conv_encoder'",
    ),
    Case(
        "decoder of another code size than the encoder's",
        restore("gray.png", model="decoder_code"),
        2,
        "decoder.json: kwarg 'code_dim' is 7 but encoder.json's is 32",
    ),
    Case(
        "generator of another latent size than `model.json`'s",
        restore("gray.png", model="latent8"),
        2,
        "generator.json: kwarg 'latent_dim' is 8 but model.json says 16",
    ),
    Case(
        "NaN weight in `generator.safetensors`",
        restore("gray.png", model="nan_weight"),
        2,
        "generator.safetensors: tensor 'blocks.0.weight' has 1 NaN or infinite value(s)",
    ),
    Case(
        "infinite BatchNorm statistic in `generator.safetensors`",
        restore("gray.png", model="inf_statistic"),
        2,
        "generator.safetensors: tensor 'stem.2.running_var' has 32 NaN or infinite value(s)",
    ),
    Case(
        "integer tensor where the network has floats",
        restore("gray.png", model="int_weight"),
        2,
        "tensor 'stem.0.weight' is I64; DCGANGenerator needs F16 or BF16 or F32 or F64",
    ),
    # task parameters
    Case(
        "negative sigma",
        restore("gray.png", extra=("--param", "sigma=-0.1")),
        2,
        "sigma must be >= 0, got -0.1",
    ),
    Case(
        "infinite sigma",
        restore("gray.png", extra=("--param", "sigma=Infinity")),
        2,
        "sigma must be finite, got inf",
    ),
    Case(
        "NaN sigma",
        restore("gray.png", extra=("--param", "sigma=NaN")),
        2,
        "task 'denoise': sigma must be finite, got nan",
    ),
    Case(
        "sigma that is not a number",
        restore("gray.png", extra=("--param", "sigma=abc")),
        2,
        "task 'denoise': sigma must be float, got 'abc'",
    ),
    Case(
        "mask file all white (hides nothing)",
        restore("gray.png", task="inpaint", extra=("--mask-file", "{f}/mask_white.png")),
        2,
        "the mask must keep some pixels and hide some",
    ),
    Case(
        "mask file all black (hides everything)",
        restore("gray.png", task="inpaint", extra=("--mask-file", "{f}/mask_black.png")),
        2,
        "the mask must keep some pixels and hide some",
    ),
    Case(
        "mask file of the wrong size",
        restore("gray.png", task="inpaint", extra=("--mask-file", "{f}/mask20.png")),
        2,
        "mask is (20, 20) but the model's images are (28, 28)",
    ),
    Case(
        "mask file that is not an image",
        restore("gray.png", task="inpaint", extra=("--mask-file", "{f}/text.png")),
        2,
        "cannot read image",
    ),
    Case(
        "mask file for a task other than `inpaint`",
        restore("gray.png", extra=("--mask-file", "{f}/mask20.png")),
        2,
        "a mask file only applies to the inpaint task",
    ),
    Case(
        "block mask covering the whole image",
        restore("gray.png", task="inpaint", extra=("--param", "block=28")),
        2,
        "mask keeps 0 of 784 pixels",
    ),
    Case(
        "random mask missing every pixel",
        restore(
            "gray.png", task="inpaint", extra=("--param", "mask=random", "--param", "missing=1.0")
        ),
        2,
        "missing must be > 0 and < 1, got 1.0",
    ),
    Case(
        "`cs` with m larger than the image",
        restore("gray.png", task="cs", extra=("--param", "m=10000", "--simulate")),
        2,
        "m must be an integer between 1 and n = C*H*W = 784, got 10000",
    ),
    Case(
        "`cs` on real images (no `--simulate`)",
        restore("gray.png", task="cs", extra=("--param", "m=10")),
        2,
        "task 'cs' measures vectors, not images",
    ),
    Case(
        "superres factor that does not divide the size",
        restore("gray.png", task="superres", extra=("--param", "factor=3")),
        2,
        "factor must divide the image size 28x28, got 3",
    ),
    Case(
        "blur wider than the image",
        restore("gray.png", task="deblur", extra=("--param", "blur_sigma=50")),
        2,
        "needs a 335x335 kernel, larger than the 28x28 image",
    ),
    Case("unknown task", restore("gray.png", task="blur"), 2, "unknown task 'blur'; known:"),
    Case(
        "parameter the task does not take",
        restore("gray.png", extra=("--param", "factor=2")),
        2,
        "task 'denoise' has no parameter factor; it takes noise, sigma",
    ),
    Case(
        "`--param seed=1` (the run's seed is `--seed`)",
        restore("gray.png", extra=("--param", "seed=1")),
        2,
        "task 'denoise' has no parameter seed; it takes noise, sigma",
    ),
    Case(
        "`--param` without `=`",
        restore("gray.png", extra=("--param", "sigma")),
        2,
        "--param takes KEY=VALUE, got 'sigma'",
    ),
    Case(
        "negative seed",
        restore("gray.png", extra=("--seed", "-1")),
        2,
        "seed must be an integer >= 0, got -1",
    ),
    # methods
    Case(
        "unknown method", restore("gray.png", method="magic"), 2, "unknown method 'magic'; known:"
    ),
    Case(
        "unknown `--method-opt` (`steps2=3`)",
        restore("gray.png", method="csgm", extra=("--method-opt", "steps2=3")),
        2,
        "method 'csgm' has no option ['steps2']; options:",
    ),
    Case(
        "`--method-opt steps=abc`",
        restore("gray.png", method="csgm", extra=("--method-opt", "steps=abc")),
        2,
        "method 'csgm': steps must be int, got 'abc'",
    ),
    Case(
        "`--method-opt steps=2.5`",
        restore("gray.png", method="ge", extra=("--method-opt", "steps=2.5")),
        2,
        "method 'ge': steps must be int, got 2.5",
    ),
    Case(
        "`--method-opt lr=-1`",
        restore("gray.png", method="csgm", extra=("--method-opt", "lr=-1")),
        2,
        "lr must be > 0, got -1",
    ),
    Case(
        "`--method-opt weight=abc` for `tv`",
        restore("gray.png", method="tv", extra=("--method-opt", "weight=abc")),
        2,
        "method 'tv': weight must be float or None, got 'abc'",
    ),
    Case(
        "unknown option of a classical method",
        restore("gray.png", method="wiener", extra=("--method-opt", "steps=3")),
        2,
        "method 'wiener' has no option ['steps']",
    ),
    Case(
        "classical method that cannot solve the task (`lasso_dct` for `denoise`)",
        restore("gray.png", method="lasso_dct"),
        2,
        "method 'lasso_dct' accepts CompressedSensing physics, got Denoising",
        after_bar=True,
    ),
    # command line and output folder
    Case(
        "output folder that is an existing file",
        restore("gray.png", out="a_file"),
        2,
        "output folder {f}/a_file is an existing file",
    ),
    Case(
        "output folder inside a file",
        restore("gray.png", out="a_file/out"),
        2,
        "cannot make output folder {f}/a_file/out: Not a directory",
    ),
    Case(
        "output folder holding a restore with other settings",
        restore("gray.png", extra=("--param", "sigma=0.2")),
        2,
        "holds the results of a restore with different params",
        before=restore("gray.png", extra=("--param", "sigma=0.1")),
    ),
    Case(
        "output folder inside the input folder",
        restore("mixed", out="mixed/out"),
        2,
        "-o {f}/mixed/out is inside the input folder {f}/mixed",
    ),
    Case(
        "input inside the output folder",
        restore("mixed/a.png", out="mixed"),
        2,
        "input {f}/mixed/a.png is inside the output folder {f}/mixed",
    ),
    Case(
        "named pipe (FIFO) as an input",
        restore("fifo/pipe.png"),
        2,
        "input {f}/fifo/pipe.png is not a regular file",
    ),
    Case(
        "file name that is not valid UTF-8",
        restore("badname"),
        2,
        "has a name that is not valid UTF-8; rename it",
    ),
    Case(
        "`--method-opt lr=Infinity`",
        restore("gray.png", method="csgm", extra=("--method-opt", "lr=Infinity")),
        2,
        "method 'csgm': lr must be finite, got inf",
    ),
    Case(
        "`--lambda NaN`",
        restore("gray.png", method="ge", extra=("--lambda", "NaN")),
        2,
        "method 'ge': latent_weight must be finite, got nan",
    ),
    Case(
        "`--min-distance NaN`",
        restore("gray.png", method="csgm", extra=("--min-distance", "NaN")),
        2,
        "min_distance must be finite, got nan",
    ),
    Case(
        "`--param blur_sigma=Infinity`",
        restore("gray.png", task="deblur", extra=("--param", "blur_sigma=Infinity")),
        2,
        "task 'deblur': blur_sigma must be finite, got inf",
    ),
    Case(
        "`--param levels=1e40` (with `--simulate`)",
        restore("gray.png", task="quantize", extra=("--param", "levels=1e40", "--simulate")),
        2,
        "task 'quantize': levels must be int, got 1e+40",
    ),
    Case(
        "`--batch-size 0`",
        restore("gray.png", extra=("--batch-size", "0")),
        2,
        "--batch-size must be >= 1, got 0",
    ),
    Case(
        "`--steps abc` (argparse)",
        train_gan_argv("--steps", "abc"),
        2,
        "argument --steps: invalid int value: 'abc'",
    ),
    Case(
        "missing required `--task` (argparse)",
        restore("gray.png", task=None),
        2,
        "the following arguments are required: --task",
    ),
    # training
    Case(
        "`--data-opt size=abc`",
        train_gan_argv(
            data=("--data", "folder", "--data-opt", "root={f}/mixed", "--data-opt", "size=abc")
        ),
        2,
        "dataset 'folder': size must be int, got 'abc'",
    ),
    Case(
        "`--data-opt root=123` (not a path)",
        train_gan_argv(data=("--data", "folder", "--data-opt", "root=123")),
        2,
        "dataset 'folder': root must be str or PathLike, got 123",
    ),
    Case(
        "unknown dataset option",
        train_gan_argv(data=("--data", "mnist5k", "--data-opt", "colour=3")),
        2,
        "dataset 'mnist5k': got an unexpected keyword argument 'colour'",
    ),
    Case("unknown dataset", train_gan_argv(data=("--data", "cifar")), 2, "unknown dataset 'cifar'"),
    Case(
        "training folder with no readable images",
        train_gan_argv(data=("--data", "folder", "--data-opt", "root={f}/no_images")),
        2,
        "no readable images in",
    ),
    Case(
        "image size the networks do not have (30 px)",
        train_gan_argv(
            data=("--data", "synthetic_rock", "--data-opt", "size=30", "--data-opt", "n=8")
        ),
        2,
        "image_size must be one of (28, 32, 64, 128), got 30",
    ),
    Case("`--steps 0`", train_gan_argv("--steps", "0"), 2, "steps must be >= 1, got 0"),
    Case(
        "`--augment foo`",
        train_gan_argv("--augment", "foo"),
        2,
        "unknown augmentation ['foo']; known: translation, cutout, brightness",
    ),
    Case(
        "`--refine -1`",
        train_gan_argv("--refine", "-1"),
        2,
        "refine and hidden >= 0, got 8, -1, 0",
    ),
    Case(
        "`--hidden -5`",
        train_gan_argv("--hidden", "-5"),
        2,
        "refine and hidden >= 0, got 8, 0, -5",
    ),
    Case(
        "`--latent-dist cauchy`",
        train_gan_argv("--latent-dist", "cauchy"),
        2,
        "latent_dist must be one of ('normal', 'uniform') or e.g. 'normal+cat10'",
    ),
    Case(
        "`--latent-dist normal+cat10` with `--latent-dim 8`",
        train_gan_argv("--latent-dist", "normal+cat10"),
        2,
        "latent_dist 'normal+cat10' needs latent_dim > 10, got 8",
    ),
    Case(
        "`--latent-dist normal+cat4 --arch pgan`",
        train_gan_argv("--latent-dist", "normal+cat4", "--arch", "pgan"),
        2,
        "a categorical latent ('normal+cat4') needs arch 'dcgan', got 'pgan'",
    ),
    Case(
        "`--class-labels` without a categorical latent",
        train_gan_argv("--class-labels"),
        2,
        "class_labels needs a categorical latent, e.g. latent_dist 'normal+cat10' for 10 classes",
    ),
    Case(
        "`--class-labels --latent-dist normal+cat4` on the 10 digit classes",
        train_gan_argv("--class-labels", "--latent-dist", "normal+cat4"),
        2,
        "dataset mnist5k has 10 classes but the latent's category has 4: use latent_dist "
        "'normal+cat10'",
    ),
    Case(
        "`--class-labels` on unlabelled images",
        train_gan_argv(
            "--class-labels",
            "--latent-dist",
            "normal+cat2",
            data=("--data", "synthetic_rock", "--data-opt", "n=8"),
        ),
        2,
        "has unlabelled images",
    ),
    Case(
        "`--device tpu`",
        train_gan_argv("--device", "tpu"),
        2,
        "device must be cpu, cuda, cuda:N or mps, got 'tpu'",
    ),
    Case(
        "`train gan --out` that is a file",
        train_gan_argv(out="a_file"),
        2,
        "output folder {f}/a_file is an existing file",
    ),
    Case(
        "`--resume` from a damaged `gan_state.safetensors`",
        lambda e: [
            "train",
            "gan",
            "--data",
            "mnist5k",
            "--out",
            e.m["damaged_state"],
            "--steps",
            "30",
            "--batch-size",
            "16",
            "--latent-dim",
            "16",
            "--width",
            "16",
            "--resume",
        ],
        2,
        "is not a readable .safetensors file",
    ),
    Case(
        "`train gan --out` holding a trained run",
        train_gan_argv(),
        2,
        "already holds a trained run (generator, discriminator, gan_state.safetensors); use "
        "--resume to continue it or --overwrite to train anew",
        before=train_gan_argv(),
    ),
    Case(
        "`--resume` over a trained model without its state",
        lambda e: [_remove(e.out / "gan_state.safetensors"), *train_gan_argv("--resume")(e)][1:],
        2,
        "holds generator, discriminator but no gan_state.safetensors to resume from",
        before=train_gan_argv(),
    ),
    Case(
        "`--resume` of a digit run on other data",
        train_gan_argv("--resume", data=("--data", "synthetic_rock", "--data-opt", "size=28")),
        2,
        "was trained on other data ('mnist5k:",
        before=train_gan_argv(),
    ),
    Case(
        "encoder data of another size than the generator's",
        lambda e: [
            "train",
            "encoder",
            "--data",
            "synthetic_rock",
            "--data-opt",
            "size=32",
            "--data-opt",
            "n=8",
            "--model",
            e.m["gray"],
            "--steps",
            "1",
        ],
        2,
        "data are 1-channel 32 px images but the generator",
    ),
    Case(
        "encoder for an RGB model on gray data",
        lambda e: ["train", "encoder", "--data", "mnist5k", "--model", e.m["rgb"], "--steps", "1"],
        2,
        "data are 1-channel 28 px images but the generator",
    ),
    # bench
    Case(
        "bench spec with an unknown key",
        bench("spec_unknown_key.json"),
        2,
        "unknown spec keys ['colour']",
    ),
    Case(
        "bench spec with an unknown method", bench("spec_magic.json"), 2, "unknown method 'magic'"
    ),
    Case("bench spec that is not valid JSON", bench("spec_broken.json"), 2, "is not valid JSON"),
    Case("bench spec that does not exist", bench("nowhere.json"), 2, "does not exist"),
    Case(
        "bench spec whose images do not fit the model (gray digits, RGB model)",
        bench("spec_mnist.json", model="rgb"),
        2,
        "spec data are (1, 28, 28) images but the model makes (3, 28, 28)",
    ),
    Case(
        "bench task name that is a path (`../../photo`)",
        bench("spec_name_path.json"),
        2,
        f"task {NAME_RULE}, got '../../photo'",
    ),
    Case(
        "bench task name that is absolute (`/abs/photo`)",
        bench("spec_name_abs.json"),
        2,
        f"task {NAME_RULE}, got '/abs/photo'",
    ),
    Case(
        "bench task name starting with `.` (`.hidden`)",
        bench("spec_name_hidden.json"),
        2,
        "task name must not start or end with '.', got '.hidden'",
    ),
    Case(
        "bench task name of 200 characters",
        bench("spec_name_long.json"),
        2,
        "task name must be at most 100 characters",
    ),
    Case(
        "bench method name that is a path (`../identity`)",
        bench("spec_method_path.json"),
        2,
        f"method {NAME_RULE}, got '../identity'",
    ),
    Case(
        "two bench tasks with one name",
        bench("spec_same_name.json"),
        2,
        "task name 'a' is used twice",
    ),
    Case(
        "two bench tasks whose names differ in case only",
        bench("spec_case_names.json"),
        2,
        "task name 'noisy' and 'Noisy' differ in case only",
    ),
    Case(
        "bench method listed twice",
        bench("spec_method_twice.json"),
        2,
        "methods lists 'identity' twice",
    ),
    Case(
        "bench spec that is not a JSON object (`null`)",
        bench("spec_null.json"),
        2,
        "a benchmark spec must be a JSON object, got None",
    ),
    Case(
        'bench `"n_images": "ten"`',
        bench("spec_n_text.json"),
        2,
        "n_images must be an integer >= 1, got 'ten'",
    ),
    Case(
        'bench `"n_images": 2.5`',
        bench("spec_n_float.json"),
        2,
        "n_images must be an integer >= 1, got 2.5",
    ),
    Case(
        'bench `"first_image": -1`',
        bench("spec_first_negative.json"),
        2,
        "first_image must be an integer >= 0, got -1",
    ),
    Case(
        'bench `"seed": "x"`',
        bench("spec_seed_text.json"),
        2,
        "seed must be an integer >= 0, got 'x'",
    ),
    Case(
        'bench `"methods": "identity"` (a string, not a list)',
        bench("spec_methods_string.json"),
        2,
        "methods must be a non-empty list of method names, got 'identity'",
    ),
    Case(
        'bench `"tasks": "denoise"`',
        bench("spec_tasks_string.json"),
        2,
        "tasks must be a non-empty list of task objects, got 'denoise'",
    ),
    Case(
        'bench task that is not an object (`"tasks": ["denoise"]`)',
        bench("spec_task_string.json"),
        2,
        "tasks[0] must be an object like",
    ),
    Case(
        'bench task with an unknown key (`"param"`)',
        bench("spec_task_key.json"),
        2,
        "tasks[0] has unknown keys ['param']",
    ),
    Case(
        'bench `"params": "sigma=0.1"`',
        bench("spec_params_string.json"),
        2,
        "task 'noisy': params must be an object, got 'sigma=0.1'",
    ),
    Case(
        "bench params key the task does not take (`seed`)",
        bench("spec_params_seed.json"),
        2,
        "task 'denoise' has no parameter seed; it takes noise, sigma",
    ),
    Case(
        'bench `"data_options": [1]`',
        bench("spec_data_options_list.json"),
        2,
        "data_options must be an object, got [1]",
    ),
    Case(
        'bench `"method_options": {"ge": "steps=3"}`',
        bench("spec_options_string.json"),
        2,
        "method_options['ge'] must be an object of options, got 'steps=3'",
    ),
    Case(
        'bench `NaN` in params (`"sigma": NaN`)',
        bench("spec_nan.json"),
        2,
        "task 'noisy': params['sigma'] must be a finite number, got nan",
    ),
    Case(
        "bench `Infinity` in method options",
        bench("spec_inf.json"),
        2,
        "method_options['ge']['lr'] must be a finite number, got inf",
    ),
    Case(
        "bench spec nested 100000 levels deep",
        bench("spec_deep.json"),
        2,
        "{f}/spec_deep.json nests lists and objects too deeply",
    ),
    Case(
        "bench first_image + n_images beyond the split",
        bench("spec_beyond.json"),
        2,
        "first_image + n_images must be <= 500, the size of the test split of 'mnist5k', "
        "got 499 + 2",
    ),
    Case(
        "bench spec that is not UTF-8",
        bench("spec_latin1.json"),
        2,
        "{f}/spec_latin1.json is not UTF-8 text: invalid continuation byte at byte 22",
    ),
]


def _argv(argv: Callable[[Env], list], env: Env) -> list[str]:
    return [str(a).replace("{f}", str(env.f)) for a in argv(env)]


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's exit
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.input for c in CASES])
def test_bad_input_gets_one_line_or_a_conversion(case, env, capsys):
    if case.before is not None:
        assert _run(capsys, _argv(case.before, env))[0] == 0
    code, out, err = _run(capsys, _argv(case.argv, env))
    expect = case.expect.replace("{f}", str(env.f))
    assert "Traceback" not in err and "Traceback" not in out
    assert code == case.code, err
    if case.code == 0:
        assert expect in out
        assert len(list((env.out / "restored").iterdir())) == 1
        return
    lines = err.rstrip("\n").split("\n")  # not splitlines: a progress bar redraws with \r
    assert lines[-1].startswith("genc: error: ") and expect in lines[-1], err
    if case.after_bar:
        assert all("%|" in line for line in lines[:-1]), err
    else:
        assert len(lines) == 1, err


def test_nothing_is_restored_before_a_bad_file_is_found(env, capsys):
    """All inputs are read before solving: one damaged file stops the run before any work or
    output folder."""
    code, _, err = _run(capsys, _argv(restore("mixed"), env))
    assert code == 2 and "c.png" in err
    assert not env.out.exists()


def _table_rows() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in DOC.read_text().split("## Compressed files", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[1].isdigit():
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def test_the_table_lists_every_case():
    rows = _table_rows()
    assert list(rows) == [c.input for c in CASES]
    for case in CASES:
        code, what = rows[case.input]
        assert int(code) == case.code, case.input
        if case.code == 2:
            assert case.expect.replace("{f}", "DIR") in what, case.input
    assert len(rows) >= 25


@pytest.mark.parametrize(
    "name, argv",
    [
        ("truncated PNG", lambda e: restore("cut.png")(e)),
        ("pickle as model", lambda e: restore("gray.png")(e) + ["--model", e.f / "model.pt"]),
    ],
)
def test_no_traceback_reaches_stderr_of_the_real_command(name, argv, env):
    genc = Path(sys.executable).parent / "genc"
    command = [str(genc)] if genc.exists() else [sys.executable, "-m", "generative_encoder.cli"]
    done = subprocess.run(
        command + [str(a) for a in argv(env)],
        capture_output=True,
        text=True,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert done.returncode == 2
    assert re.fullmatch(r"genc: error: [^\n]+\n", done.stderr), done.stderr
