"""Small specs the tests share (tiny data, a few epochs: each runs in seconds on one core).

``SPIRALS_TINY`` is the suite's one tiny study (float -> QAT W2A2 and INQ-4 of an 8-wide FCDNN on 300 spiral points,
a report with one figure): the chaos suite, the engine's resume and edge tests and the ``tiny_spec`` fixture
(tests/conftest.py) all run it. ``FLOAT_W2`` is the smallest two-job grid (float, then QAT W2 of it) for the
store's tests. ``DIGITS`` is a two-model grid with an ensemble on scikit-learn's digits.
"""

DIGITS = """
name = "digits-grid"
description = "two models x three methods x two seeds on digits"
task = "classification"
[data]
name = "digits"
subset = 300
[grid]
model = ["narrow", "wide"]
method = ["float", "W4A4", "INQ"]
seed = [0, 1]
bits = [3]
[models.narrow]
name = "fcdnn"
width = 16
depth = 2
[models.wide]
name = "fcdnn"
width = 32
depth = 2
[train]
epochs = 3
batch_size = 32
lr = 0.01
[methods.float]
kind = "float"
[methods.W4A4]
kind = "qat"
parent = "float"
calibrate = 256
train = { epochs = 1, lr = 0.001 }
[methods.W4A4.quant]
weight = { name = "uniform", bits = 4 }
act = { name = "uniform", bits = 4, signed = false }
keep_float = ["first"]
[methods.INQ]
kind = "inq"
parent = "float"
bits = "${bits}"
portions = [0.5, 1.0]
train = { epochs = 1 }
[methods.E2]
kind = "ensemble"
parent = "float"
members = 2
[[report.tables]]
title = "Test accuracy (%)"
rows = "model"
columns = ["method", "bits"]
value = "accuracy"
reference = { narrow = { float = 90.0 } }
[[report.figures]]
metric = "accuracy"
x = "method"
lines = "model"
[scales.tiny]
train = { epochs = 1 }
"""

SPIRALS_TINY = """name = "chaos"
task = "classification"
[data]
name = "spirals"
subset = 300
test_resolution = 21
[grid]
model = ["small"]
method = ["float", "W2", "INQ"]
seed = [0]
[models.small]
name = "fcdnn"
width = 8
depth = 3
[train]
epochs = 3
batch_size = 64
[methods.float]
kind = "float"
[methods.W2]
kind = "qat"
parent = "float"
quant = { weight = { name = "uniform", bits = 2 }, act = { name = "pact", bits = 2 }, keep_float = ["first"] }
calibrate = 64
train = { epochs = 2 }
[methods.INQ]
kind = "inq"
parent = "float"
bits = 4
portions = [0.5, 1.0]
train = { epochs = 1 }
[[report.figures]]
metric = "accuracy"
x = "method"
"""


def one_cell(text: str = DIGITS) -> str:
    """DIGITS with one model and one seed (the ensemble then has one member)."""
    return (
        text.replace("seed = [0, 1]", "seed = [0]")
        .replace('model = ["narrow", "wide"]', 'model = ["narrow"]')
        .replace("members = 2", "members = 1")
    )


FLOAT_W2 = """
name = "float-w2"
task = "classification"
[data]
name = "spirals"
subset = 200
test_resolution = 11
[grid]
model = ["small"]
method = ["float", "W2"]
seed = [0]
[models.small]
name = "fcdnn"
width = 8
depth = 2
[train]
epochs = 1
batch_size = 64
[methods.float]
kind = "float"
[methods.W2]
kind = "qat"
parent = "float"
calibrate = 64
quant = { weight = { name = "uniform", bits = 2 } }
"""
