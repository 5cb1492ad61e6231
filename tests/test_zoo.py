"""The shipped, named models: each loads by name from any folder, has its model card, latent
regressor and codec, and its generator draws images of its domain's geometry."""

import os

import pytest
import torch

from generative_encoder.apps.codec import Codec
from generative_encoder.errors import CheckpointError
from generative_encoder.io import zoo
from generative_encoder.io.zoo import installed_models, resolve_model, shipped_model_dir


def test_the_wheel_models_are_installed():
    assert {"mnist5k", "berea64"} <= set(installed_models())


def test_a_named_model_missing_from_the_install_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(zoo, "files", lambda _: tmp_path)  # an install without weights/
    with pytest.raises(CheckpointError, match="non-commercial research use only") as err:
        resolve_model("celeba64")
    assert "scripts/train_celeba64.sh" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="no shipped model 'faces'"):
        shipped_model_dir("faces")


@pytest.mark.parametrize("name", installed_models())
def test_every_shipped_model_loads_by_name_with_its_card_regressor_and_codec(name, tmp_path):
    here = os.getcwd()
    os.chdir(tmp_path)  # a name, not a path: found from any folder
    try:
        model = resolve_model(name)
    finally:
        os.chdir(here)
    card = (shipped_model_dir(name) / "MODEL.md").read_text()
    assert f"scripts/train_{name}.sh" in card and "genc evaluate-model" in card
    assert model.network("regressor") is not None
    codec = Codec(model)
    assert codec.bits == (1, 2, 3, 4, 5, 6)
    with torch.no_grad():
        x = model.generator(model.generator.sample_latent(4, torch.Generator().manual_seed(0)))
    assert x.shape[1:] == model.image_shape
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and float(x.std()) > 0.05
    files = codec.compress(x, 3)
    pixels = model.image_shape[1] * model.image_shape[2]
    assert max(8 * len(f) for f in files) < pixels  # under 1 bit per pixel at 3 bits
