"""Model files that are well-formed JSON and safetensors but describe impossible, mismatched or
damaged networks: each is refused with one CheckpointError line naming the file and the bad
key or tensor, before any large allocation; good files (the shipped model, trained folders,
float16 weights) still load."""

import inspect
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from generative_encoder.cli import main
from generative_encoder.data import get_dataset
from generative_encoder.errors import CheckpointError
from generative_encoder.io.checkpoints import (
    MAX_PARAMETERS,
    load_model,
    load_network,
    plan_network,
    save_network,
    save_tensors,
)
from generative_encoder.io.images import write_image
from generative_encoder.io.zoo import shipped_model_dir
from generative_encoder.models.registry import NETWORKS, build_network


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("samples"))
    return dst


def _edit(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def _kwargs(name: str, **changes):
    """A change of ``name.json``'s kwargs (None deletes nothing: it is a value)."""
    return lambda p: _edit(p / f"{name}.json", lambda c: c["kwargs"].update(changes))


def _swap(src: str, dst: str):
    """The network files ``src.*`` copied over ``dst.*``."""

    def change(p):
        for suffix in ("json", "safetensors"):
            shutil.copyfile(p / f"{src}.{suffix}", p / f"{dst}.{suffix}")

    return change


def _save(name: str, arch: str, **kwargs):
    """An untrained network saved as ``name``."""
    return lambda p: save_network(p, name, build_network(arch, **kwargs))


def _tensors(name: str, change):
    """``name.safetensors`` rewritten with change(state) applied to its tensors."""

    def rewrite(p):
        state = dict(load_network(p, name).state_dict())
        change(state)
        save_tensors(p / f"{name}.safetensors", state)

    return rewrite


def _set(key: str, value):
    def change(state):
        state[key] = value(state[key]) if callable(value) else value

    return change


def _nan_at(index):
    def put(t):
        t = t.clone()
        t.view(-1)[index] = math.nan
        return t

    return put


GEOMETRY = dict(channels=1, image_size=28)

# (case id, change of a copy of the tiny model folder, the error line's file, its key and words)
JSON_CASES = [
    ("width null", _kwargs("generator", width=None), "generator.json", "'width'", "must be int"),
    ("negative width", _kwargs("generator", width=-8), "generator.json", "'width'", "1..4096"),
    ("float width", _kwargs("generator", width=16.0), "generator.json", "'width'", "got 16.0"),
    ("bool refine", _kwargs("generator", refine=True), "generator.json", "'refine'", "got True"),
    ("huge width", _kwargs("generator", width=100000), "generator.json", "'width'", "100000"),
    (
        "width that needs too many numbers",
        _kwargs("generator", width=4096),
        "generator.json",
        "'width': 4096",
        f"more than the {MAX_PARAMETERS:,}",
    ),
    (
        "depth as text",
        _kwargs("encoder", depth="two"),
        "encoder.json",
        "'depth'",
        "must be int or None, got 'two'",
    ),
    (
        "decoder depth beyond the image (s0 = 0)",
        _kwargs("decoder", encoder_depth=5),
        "decoder.json",
        "encoder_depth",
        "must be in 1..4, got 5",
    ),
    (
        "decoder depth out of range",
        _kwargs("decoder", depth=0),
        "decoder.json",
        "'depth'",
        "must be in 1..7, got 0",
    ),
    (
        "latent prior that is not one",
        _kwargs("generator", latent_dist="normal+cat²"),
        "generator.json",
        "latent_dist",
        "'normal+cat²'",
    ),
    (
        "encoder file as the generator",
        _swap("encoder", "generator"),
        "generator.json",
        "'arch'",
        "began_generator, dcgan_generator, pgan_generator for this file, got 'conv_encoder'",
    ),
    (
        "generator file as the discriminator",
        _swap("generator", "discriminator"),
        "discriminator.json",
        "'arch'",
        "got 'dcgan_generator'",
    ),
    (
        "decoder file as the encoder",
        _swap("decoder", "encoder"),
        "encoder.json",
        "'arch'",
        "got 'conv_decoder'",
    ),
    (
        "encoder file as the decoder",
        _swap("encoder", "decoder"),
        "decoder.json",
        "'arch'",
        "got 'conv_encoder'",
    ),
    (
        "decoder of another code size",
        _save("decoder", "conv_decoder", code_dim=7, width=8, **GEOMETRY),
        "decoder.json",
        "'code_dim'",
        "is 7 but encoder.json's is 32",
    ),
    (
        "generator of another latent size than model.json's",
        _save("generator", "dcgan_generator", latent_dim=8, width=8, **GEOMETRY),
        "generator.json",
        "'latent_dim'",
        "is 8 but model.json says 16",
    ),
    (
        "model.json with another latent prior than the generator's",
        lambda p: _edit(p / "model.json", lambda c: c.update(latent_dist="uniform")),
        "generator.json",
        "'latent_dist'",
        "is 'normal' but model.json says 'uniform'",
    ),
    (
        "model.json latent size as a bool",
        lambda p: _edit(p / "model.json", lambda c: c.update(latent_dim=True)),
        "model.json",
        "'latent_dim'",
        "must be int, got True",
    ),
    (
        "unknown kwarg",
        _kwargs("encoder", colour=3),
        "encoder.json",
        "'colour'",
        "bad kwargs for conv_encoder",
    ),
    (
        "5000-digit width",
        lambda p: (p / "generator.json").write_text('{"kwargs": {"width": ' + "9" * 5000 + "}}"),
        "generator.json",
        "is not valid JSON",
        "4300 digits",
    ),
    (
        "JSON nested beyond the parser's depth",
        lambda p: (p / "encoder.json").write_text("[" * 100_000),
        "encoder.json",
        "is not valid JSON",
        "recursion",
    ),
    (
        "architecture that is not a string",
        lambda p: _edit(p / "generator.json", lambda c: c.update(arch=["dcgan_generator"])),
        "generator.json",
        "['dcgan_generator']",
        "unknown architecture",
    ),
]

WEIGHT_CASES = [
    (
        "weights of another width",
        _kwargs("generator", width=8),
        "generator.safetensors",
        "'stem.0.weight'",
        "does not fit its JSON config: tensor 'stem.0.weight' is (1568, 16) in the file, "
        "(784, 16) in DCGANGenerator",
    ),
    (
        "tensor missing",
        _tensors("encoder", lambda s: s.pop("fc.bias")),
        "encoder.safetensors",
        "'fc.bias'",
        "of ConvEncoder is missing",
    ),
    (
        "tensor too many",
        _tensors("encoder", _set("fc.extra", torch.zeros(2))),
        "encoder.safetensors",
        "'fc.extra'",
        "unexpected tensor",
    ),
    (
        "NaN weight",
        _tensors("generator", _set("stem.0.weight", _nan_at(5))),
        "generator.safetensors",
        "'stem.0.weight'",
        "has 1 NaN or infinite value(s) of 25088",
    ),
    (
        "infinite buffer",
        _tensors("generator", _set("stem.2.running_mean", lambda t: t + math.inf)),
        "generator.safetensors",
        "'stem.2.running_mean'",
        "has 32 NaN or infinite value(s) of 32",
    ),
    (
        "NaN in the decoder",
        _tensors("decoder", _set("out.bias", _nan_at(0))),
        "decoder.safetensors",
        "'out.bias'",
        "NaN or infinite",
    ),
    (
        "float64 weight beyond float32's range",
        _tensors("encoder", _set("fc.bias", lambda t: t.double() * 1e300)),
        "encoder.safetensors",
        "'fc.bias'",
        "NaN or infinite",
    ),
    (
        "integer weight",
        _tensors("generator", _set("stem.0.weight", lambda t: t.long())),
        "generator.safetensors",
        "'stem.0.weight'",
        "is I64; DCGANGenerator needs F16 or BF16 or F32 or F64",
    ),
    (
        "bool weight",
        _tensors("discriminator", _set("head.bias", lambda t: t > 0)),
        "discriminator.safetensors",
        "'head.bias'",
        "is BOOL",
    ),
    (
        "float step counter",
        _tensors("generator", _set("stem.2.num_batches_tracked", lambda t: t.float())),
        "generator.safetensors",
        "'stem.2.num_batches_tracked'",
        "is F32; DCGANGenerator needs I8",
    ),
    (
        "negative running variance",
        _tensors("generator", _set("stem.2.running_var", lambda t: -t)),
        "generator.safetensors",
        "'stem.2.running_var'",
        "negative values",
    ),
]


@pytest.mark.parametrize(
    "change, file, key, words",
    [c[1:] for c in JSON_CASES + WEIGHT_CASES],
    ids=[c[0] for c in JSON_CASES + WEIGHT_CASES],
)
def test_bad_model_file_is_refused_with_one_line_naming_file_and_key(
    tiny_model_dir, tmp_path, change, file, key, words
):
    folder = _copy(tiny_model_dir, tmp_path / "model")
    change(folder)
    with pytest.raises(CheckpointError) as info:
        load_model(folder)
    message = str(info.value)
    assert "\n" not in message
    assert f"{folder / file}" in message, message
    assert key in message and words in message, message


def test_nan_model_is_refused_by_genc_restore_with_exit_2(tiny_model_dir, tmp_path, capsys):
    folder = _copy(tiny_model_dir, tmp_path / "model")
    _tensors("generator", _set("blocks.0.weight", _nan_at(0)))(folder)
    image = tmp_path / "x.png"
    write_image(image, get_dataset("mnist5k", "test")[0][0])
    argv = ["restore", str(image), "-o", str(tmp_path / "out"), "--model", str(folder)]
    code = main(argv + ["--task", "denoise", "--method", "identity"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"genc: error: {folder / 'generator.safetensors'}: tensor 'blocks.0.weight' has 1 NaN "
        "or infinite value(s) of 8192\n"
    )
    assert not (tmp_path / "out" / "restored").exists()


def test_progressive_stage_out_of_range_is_refused(tmp_path):
    G = build_network("pgan_generator", latent_dim=8, width=4, **GEOMETRY)
    save_network(tmp_path, "g", G)
    assert load_network(tmp_path, "g").resolution == 28
    state = dict(G.state_dict(), stage=torch.tensor(9))
    save_tensors(tmp_path / "g.safetensors", state)
    with pytest.raises(CheckpointError) as info:
        load_network(tmp_path, "g")
    assert str(info.value) == (
        f"{tmp_path / 'g.safetensors'}: tensors 'stage', 'alpha': stage must be in 0..2 and "
        "alpha in [0, 1], got 9, 1.0"
    )


# --- good files keep loading ---------------------------------------------------------------------


def test_shipped_model_loads_with_its_weights_unchanged():
    folder = shipped_model_dir("mnist5k")
    bundle = load_model(folder)
    for name in ("generator", "discriminator", "encoder", "decoder"):
        stored = load_file(str(folder / f"{name}.safetensors"))
        loaded = bundle.network(name).state_dict()
        assert stored.keys() == loaded.keys()
        assert all(torch.equal(stored[k], loaded[k]) for k in stored), name
    x = bundle.generator(bundle.generator.sample_latent(2))
    assert x.shape == (2, 1, 28, 28) and torch.isfinite(x).all()


def test_every_encoder_family_loads(began_dir):
    bundle = load_model(began_dir)
    assert type(bundle.generator).__name__ == "BEGANGenerator"
    assert set(bundle.extras) == {"vae_encoder", "vae_decoder", "aegan_encoder", "aegan_decoder"}
    assert bundle.network("vae_encoder").kwargs["code_dim"] == 8


def test_float16_weights_are_accepted_and_converted_to_float32(tmp_path):
    G = build_network("dcgan_generator", latent_dim=8, width=8, **GEOMETRY)
    for p in G.parameters():
        torch.nn.init.normal_(p, std=0.1)
    save_tensors(tmp_path / "g.safetensors", G.half().state_dict())
    save_network(tmp_path / "ref", "g", G.float())  # the JSON, and the weights G rounded to half
    (tmp_path / "ref" / "g.json").rename(tmp_path / "g.json")
    loaded = load_network(tmp_path, "g")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for key, t in G.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], t), key


def test_header_is_checked_before_any_weight_is_read(tmp_path, monkeypatch):
    """A JSON that does not fit its weights fails on the header alone: no tensor is loaded."""
    import generative_encoder.io.checkpoints as checkpoints

    save_network(tmp_path, "e", build_network("conv_encoder", code_dim=4, width=4, **GEOMETRY))
    _edit(tmp_path / "e.json", lambda c: c["kwargs"].update(code_dim=5))

    def no_load(path):
        raise AssertionError(f"read the tensors of {path}")

    monkeypatch.setattr(checkpoints, "load_tensors", no_load)
    with pytest.raises(CheckpointError, match=r"'fc.weight' is \(4, 392\) in the file, \(5, 392\)"):
        load_network(tmp_path, "e")


# --- property: any JSON loads to finite weights or fails with CheckpointError --------------------

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["normal", "uniform", "normal+cat4", "normal+cat²", "uniform+cat"]),
    st.sampled_from(NETWORKS.names()),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2),
)
PLAUSIBLE = st.sampled_from([0, 1, 2, 3, 4, 5, 8, 16, 28, 32, 64, 128, 4096, True, None])
SOMETIMES = st.sampled_from([False, False, False, True])


@st.composite
def mutated(draw, config: dict) -> dict:
    """``config`` with each kwarg kept, dropped or replaced (by a plausible value or any value),
    sometimes extra kwargs, another arch (a registered one or any value), or another format,
    version or kwargs object."""
    config = json.loads(json.dumps(config))
    kwargs = {}
    for key, value in config["kwargs"].items():
        choice = draw(st.sampled_from(["keep", "keep", "drop", "plausible", "any"]))
        if choice == "keep":
            kwargs[key] = value
        elif choice != "drop":
            kwargs[key] = draw(PLAUSIBLE if choice == "plausible" else ANY_VALUE)
    if draw(SOMETIMES):
        extra = st.sampled_from(["depth", "hidden", "mbstd", "n_categories", "x"])
        kwargs |= draw(st.dictionaries(extra, st.one_of(PLAUSIBLE, ANY_VALUE), max_size=2))
    config["kwargs"] = kwargs
    if draw(SOMETIMES):
        config["arch"] = draw(st.one_of(st.sampled_from(NETWORKS.names()), ANY_VALUE))
    if draw(SOMETIMES) and draw(SOMETIMES):
        config[draw(st.sampled_from(["format", "version", "kwargs"]))] = draw(ANY_VALUE)
    return config


NAMES = ("generator", "discriminator", "encoder", "decoder")


@pytest.fixture(scope="module")
def mutable_model(tiny_model_dir, tmp_path_factory):
    folder = _copy(tiny_model_dir, tmp_path_factory.mktemp("mutable") / "model")
    return folder, {n: json.loads((folder / f"{n}.json").read_text()) for n in NAMES}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutated_network_json_loads_finite_or_raises_checkpoint_error(mutable_model, data):
    folder, originals = mutable_model
    name = data.draw(st.sampled_from(NAMES))
    config = data.draw(mutated(originals[name]))
    (folder / f"{name}.json").write_text(json.dumps(config))
    try:
        bundle = load_model(folder)
    except CheckpointError as e:
        assert "\n" not in str(e) and str(folder) in str(e)
    else:
        for n in NAMES:
            assert all(torch.isfinite(t).all() for t in bundle.network(n).state_dict().values())
    finally:
        (folder / f"{name}.json").write_text(json.dumps(originals[name]))


@st.composite
def network_configs(draw) -> dict:
    """A network JSON of a registered architecture (or sometimes any value as arch) whose
    kwargs are each left out, plausible or any value, plus sometimes an unknown one."""
    arch = draw(
        st.one_of(st.sampled_from(NETWORKS.names()), ANY_VALUE)
        if draw(SOMETIMES)
        else st.sampled_from(NETWORKS.names())
    )
    names = (
        list(inspect.signature(NETWORKS.get(arch)).parameters) if arch in NETWORKS.names() else []
    )
    kwargs = {}
    for key in names + (["x"] if draw(SOMETIMES) else []):
        choice = draw(st.sampled_from(["omit", "plausible", "plausible", "any"]))
        if choice != "omit":
            kwargs[key] = draw(PLAUSIBLE if choice == "plausible" else ANY_VALUE)
    return {"format": "generative-encoder/network", "version": 1, "arch": arch, "kwargs": kwargs}


@settings(max_examples=80, deadline=None)
@given(config=network_configs())
def test_any_network_config_plans_within_bounds_or_raises_checkpoint_error(config):
    try:
        plan = plan_network(config, Path("net.json"))
    except CheckpointError as e:
        assert "\n" not in str(e) and str(e).startswith("net.json: ")
    else:
        assert sum(t.numel() for t in plan.state_dict().values()) <= MAX_PARAMETERS
        assert all(t.is_meta for t in plan.state_dict().values())
