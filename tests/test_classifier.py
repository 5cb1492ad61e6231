"""The judge of digit generators: confident fraction and class balance on known inputs."""

import math

import torch
from torch import nn

from generative_encoder.training.classifier import class_balance, confident_fraction


class FixedLogits(nn.Module):
    """Returns the logits stored for image i in pixel [0, 0, 0] (an index) of each image."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[x[:, 0, 0, 0].long()]


def test_confident_fraction_counts_top_probabilities_at_or_above_threshold():
    logits = torch.tensor([[10.0, 0.0], [0.0, 10.0], [0.0, 0.0], [math.log(9), 0.0]])
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    frac, pred = confident_fraction(FixedLogits(logits), images, batch_size=3)
    # p = 0.99995, 0.99995, 0.5, exactly 0.9: three of four reach 0.9
    assert frac == 0.75
    assert pred.tolist() == [0, 1, 0, 0]


def test_class_balance_is_one_for_uniform_and_zero_for_one_class():
    assert abs(class_balance(torch.arange(10).repeat(7), 10) - 1) < 1e-12
    assert class_balance(torch.full((50,), 3), 10) == 0.0
    two = class_balance(torch.tensor([0, 1] * 5), 10)  # two equal classes: log 2 / log 10
    assert abs(two - math.log(2) / math.log(10)) < 1e-12
