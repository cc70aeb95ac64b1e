"""Evaluation batches are bounded by the input size (a conv net's activations grow with the batch's pixels), and
the probabilities do not depend on how the test set is cut into batches."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from lowbit.tasks import EVAL_INPUT_ELEMENTS, eval_batch_size, softmax_predict


def _data(n: int, *shape: int) -> TensorDataset:
    return TensorDataset(torch.randn(n, *shape), torch.zeros(n, dtype=torch.long))


@pytest.mark.slow
def test_batch_is_bounded_by_samples_and_input_elements():
    assert eval_batch_size(_data(10, 2)) == 4096  # spirals: the sample cap
    assert eval_batch_size(_data(10, 3, 32, 32)) == EVAL_INPUT_ELEMENTS // 3072 == 341  # CIFAR images
    assert eval_batch_size(_data(10, 3, 256, 256)) == 5
    assert eval_batch_size(_data(10, 3, 2048, 2048)) == 1  # never 0
    assert eval_batch_size(_data(0, 2)) == 4096


def test_probabilities_do_not_depend_on_the_batching():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 5),
    )
    data = _data(23, 3, 8, 8)
    whole = softmax_predict(model, data, batch_size=23)
    assert torch.allclose(softmax_predict(model, data, batch_size=4), whole, atol=1e-6)
    assert torch.allclose(softmax_predict(model, data), whole, atol=1e-6)  # the bounded default
    assert whole.shape == (23, 5) and torch.allclose(whole.sum(1), torch.ones(23))
