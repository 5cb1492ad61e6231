"""The K best distinct restarts: chosen by objective, distinct by latent distance."""

import math

import pytest
import torch

from generative_encoder.errors import ConfigError
from generative_encoder.eval.candidates import default_min_distance, distinct_candidates
from generative_encoder.io.checkpoints import load_model
from generative_encoder.methods import METHODS
from generative_encoder.physics import make_physics


def test_twins_are_one_candidate():
    z = torch.tensor(
        [
            [[0.0, 0.0], [0.05, 0.0], [1.0, 0.0], [1.0, 0.02]],
            [[5.0, 5.0], [0.0, 0.0], [9.0, 9.0], [2.0, 2.0]],
        ]
    )  # (2, 4, 2)
    objective = torch.tensor([[3.0, 1.0, 2.0, 4.0], [4.0, 3.0, 2.0, float("nan")]])
    c = distinct_candidates(z, objective, k=3, min_distance=0.5)
    assert c.index.tolist() == [[1, 2, -1], [2, 1, 0]]  # NaN never wins
    assert c.count.tolist() == [2, 3]
    assert c.objective[0].tolist() == [1.0, 2.0, math.inf]
    assert c.objective[1].tolist() == [2.0, 3.0, 4.0]
    assert torch.equal(c.z[0], torch.tensor([[0.05, 0.0], [1.0, 0.0], [0.0, 0.0]]))


def test_no_threshold_is_a_plain_sort():
    objective = torch.tensor([[0.3, 0.1, 0.2]])
    c = distinct_candidates(torch.zeros(1, 3, 4), objective, k=3, min_distance=0.0)
    assert c.index.tolist() == [[1, 2, 0]]
    assert default_min_distance(64) == pytest.approx(0.8)


def test_bad_arguments():
    with pytest.raises(ConfigError, match=">= 1"):
        distinct_candidates(torch.zeros(1, 2, 3), torch.zeros(1, 2), k=0)
    with pytest.raises(ConfigError, match="restart_z"):
        distinct_candidates(torch.zeros(1, 2, 3), torch.zeros(1, 3), k=1)


def test_the_first_candidate_is_the_search_answer(tiny_model_dir):
    model = load_model(tiny_model_dir)
    physics = make_physics("inpaint", model.image_shape, mask="block")
    y = physics(torch.rand(3, *model.image_shape))
    result = METHODS.build("csgm", model=model, steps=20, restarts=4).solve(y, physics)
    c = distinct_candidates(result.restart_z, result.restart_objective, k=4)
    assert torch.equal(c.objective[:, 0], result.objective)
    assert torch.equal(c.z[:, 0], result.z)
    found = c.objective[c.index >= 0]
    assert (c.objective[:, 1:] >= c.objective[:, :-1]).all() and torch.isfinite(found).all()
    for i in range(3):  # kept candidates are pairwise at least min_distance apart
        kept = c.z[i, : int(c.count[i])]
        gaps = torch.cdist(kept, kept) + torch.eye(len(kept)) * 1e9
        assert (gaps >= default_min_distance(model.generator.latent_dim)).all()
