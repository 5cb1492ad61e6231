"""The shipped, named models: each loads by name from any folder, has its model card, latent
regressor and codec, and its generator draws images of its domain's geometry."""

import os

import pytest
import torch

from generative_encoder.apps.codec import Codec
from generative_encoder.io.zoo import SHIPPED_MODELS, resolve_model, shipped_model_dir


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
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
