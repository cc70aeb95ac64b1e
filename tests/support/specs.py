"""Small specs the engine tests share (tiny data, a few epochs: each runs in seconds on one core)."""

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

SPIRALS_SMALL = """
name = "spirals-small"
task = "classification"
[data]
name = "spirals"
subset = 400
test_resolution = 21
[grid]
model = ["small"]
method = ["float", "W2A2", "INQ"]
seed = [0]
bits = [3]
[models.small]
name = "fcdnn"
width = 16
depth = 3
[train]
epochs = 3
batch_size = 32
[methods.float]
kind = "float"
[methods.W2A2]
kind = "qat"
parent = "float"
calibrate = 200
[methods.W2A2.quant]
weight = { name = "uniform", bits = 2 }
act = { name = "uniform", bits = 2, signed = false }
keep_float = ["first"]
[methods.INQ]
kind = "inq"
parent = "float"
bits = "${bits}"
portions = [0.5, 0.75, 1.0]
train = { epochs = 2 }
"""


def one_cell(text: str = DIGITS) -> str:
    """DIGITS with one model and one seed (the ensemble then has one member)."""
    return (
        text.replace("seed = [0, 1]", "seed = [0]")
        .replace('model = ["narrow", "wide"]', 'model = ["narrow"]')
        .replace("members = 2", "members = 1")
    )
