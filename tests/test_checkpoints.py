import json
import pickle

import pytest
import torch

from generative_encoder.errors import CheckpointError
from generative_encoder.io.checkpoints import (
    load_model,
    load_network,
    save_network,
    write_model_info,
)
from generative_encoder.models.registry import build_network


def _generator():
    G = build_network("dcgan_generator", latent_dim=8, channels=1, image_size=28, width=8)
    for p in G.parameters():  # non-default weights, so a load that silently does nothing fails
        torch.nn.init.normal_(p, std=0.1)
    return G.eval()


def test_network_round_trip_is_bit_exact(tmp_path):
    G = _generator()
    save_network(tmp_path, "generator", G, {"steps": 3})
    G2 = load_network(tmp_path, "generator")
    z = torch.randn(4, 8)
    assert torch.equal(G(z), G2(z))
    assert json.loads((tmp_path / "generator.json").read_text())["meta"] == {"steps": 3}
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_model_folder_round_trip(tiny_model_dir):
    bundle = load_model(tiny_model_dir)
    assert bundle.image_shape == (1, 28, 28)
    assert bundle.info["latent_dim"] == 16 and bundle.info["gan_steps"] == 20
    x = torch.rand(2, 1, 28, 28)
    again = load_model(tiny_model_dir)
    assert torch.equal(bundle.encoder(x), again.encoder(x))
    assert torch.equal(bundle.decoder(bundle.encoder(x)), again.decoder(again.encoder(x)))
    assert not bundle.generator.training  # loaded in eval mode


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".ckpt"])
def test_pickle_files_are_refused_without_being_opened(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"boom": 1}))
    with pytest.raises(CheckpointError, match="refusing to load .* pickles"):
        load_model(path)


def _copy_model(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_malformed_model_folders(tiny_model_dir, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="missing file .*model.json"):
        load_model(empty)

    def corrupt_json(name, folder, change):
        broken = _copy_model(tiny_model_dir, tmp_path / folder)
        cfg = json.loads((broken / f"{name}.json").read_text())
        change(cfg)
        (broken / f"{name}.json").write_text(json.dumps(cfg))
        return broken

    for name, change, message in [
        ("encoder", lambda c: c.update(arch="resnet9000"), "unknown architecture 'resnet9000'"),
        ("generator", lambda c: c["kwargs"].update(width="wide"), "'width' must be int"),
        ("generator", lambda c: c["kwargs"].update(depth_of_field=3), "bad kwargs"),
        ("encoder", lambda c: c["kwargs"].update(code_dim=7), "does not fit its JSON config"),
        ("decoder", lambda c: c.update(format="onnx"), "'format' must be"),
    ]:
        with pytest.raises(CheckpointError, match=message):
            load_model(corrupt_json(name, message[:8].replace(" ", "_").strip("'"), change))

    truncated = _copy_model(tiny_model_dir, tmp_path / "trunc")
    data = (truncated / "decoder.safetensors").read_bytes()
    (truncated / "decoder.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable .safetensors"):
        load_model(truncated)

    no_gen = _copy_model(tiny_model_dir, tmp_path / "nogen")
    (no_gen / "generator.json").unlink()
    with pytest.raises(CheckpointError, match="has no generator"):
        load_model(no_gen)

    wrong_size = _copy_model(tiny_model_dir, tmp_path / "size")
    write_model_info(wrong_size, image_size=32)
    with pytest.raises(CheckpointError, match="model.json says 1-channel 32 px"):
        load_model(wrong_size)


def test_no_code_path_unpickles():
    """Loading must never unpickle: no torch.load without weights_only=True, no pickle.load."""
    import pathlib
    import re

    import generative_encoder

    root = pathlib.Path(generative_encoder.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"pickle\.loads?\(", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
