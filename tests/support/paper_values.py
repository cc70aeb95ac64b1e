"""The papers' numbers that every shipped spec's ``paper`` scale must hold, each with the sentence it comes from.

SEED = Chen et al., "Quantization of Deep Neural Networks for Accurate Edge Computing" (INQ as a regulariser);
BOO = Boo, Shin, Sung, "Quantized Neural Networks: Characterization and Holistic Optimization" (arXiv 2006.00530).
A check is ``(study, selector, path, value, reference)``: every planned job of ``lowbit reproduce STUDY --scale
paper`` whose axes (and ``kind``) match ``selector`` must have ``value`` at the dotted ``path`` of its config (at
least one job must match). Values marked [R] in a reference are lowbit's stated choices where the paper is silent
(the spec comment says so); they are pinned too, so that changing one is a visible decision.
"""

from __future__ import annotations

BOO_CIFAR_FLOAT = (
    "BOO §5.2: 'number of epochs for pretraining is 200 ... learning rate starts at 0.1 and decays by 0.1 times at "
    "100 and 150 epochs. The L2 regularization ... 5e-4'"
)
BOO_CIFAR_RETRAIN = (
    "BOO §5.2: 'retrained for 100 epochs with the initial learning rate of 0.01 ... decreases by a factor of 0.1 at "
    "50 and 80 epochs. We do not employ the L2 regularization when retraining'"
)
BOO_CIFAR_COMMON = (
    "BOO §5.2: 'cropping and flipping ... The batch size is 128 ... The SGD optimizer with a momentum of 0.9'"
)
BOO_QUANT = "BOO §2: 'The weight quantization method in [18] and the PACT activation quantization [5] are adopted'"

CNN_CIFAR = ["cnn_width", "cnn_depth", "cnn_mobilenet", "cnn_blocks", "cnn_retrain"]


def _cifar_checks(study: str) -> list[tuple]:
    float_sel, retrain_sel = {"kind": "float"}, {"kind": "qat", "schedule": "step"}
    out = [
        (study, {}, "task", "image_classification_crop_flip", BOO_CIFAR_COMMON),
        (
            study,
            {},
            "data",
            {"name": "cifar10_jpeg", "subset": 0, "test_subset": 0},
            "BOO §5.2: 'using the CIFAR-10 dataset' (all of it)",
        ),
        (study, {}, "recipe.train.batch_size", 128, BOO_CIFAR_COMMON),
        (study, {}, "recipe.train.optimizer", "sgd", BOO_CIFAR_COMMON),
        (study, {}, "recipe.train.momentum", 0.9, BOO_CIFAR_COMMON),
        (study, {}, "recipe.train.device", "auto", "issue 28: runs on a GPU unchanged"),
        (study, float_sel, "recipe.train.epochs", 200, BOO_CIFAR_FLOAT),
        (study, float_sel, "recipe.train.lr", 0.1, BOO_CIFAR_FLOAT),
        (study, float_sel, "recipe.train.schedule", "step", BOO_CIFAR_FLOAT),
        (study, float_sel, "recipe.train.milestones", [100, 150], BOO_CIFAR_FLOAT),
        (study, float_sel, "recipe.train.gamma", 0.1, BOO_CIFAR_FLOAT),
        (study, float_sel, "recipe.train.weight_decay", 5e-4, BOO_CIFAR_FLOAT),
        (study, retrain_sel, "recipe.train.epochs", 100, BOO_CIFAR_RETRAIN),
        (study, retrain_sel, "recipe.train.lr", 0.01, BOO_CIFAR_RETRAIN),
        (study, retrain_sel, "recipe.train.milestones", [50, 80], BOO_CIFAR_RETRAIN),
        (study, retrain_sel, "recipe.train.gamma", 0.1, BOO_CIFAR_RETRAIN),
        (study, retrain_sel, "recipe.train.weight_decay", 0.0, BOO_CIFAR_RETRAIN),
        (study, {"kind": "qat"}, "recipe.quant.keep_float", ["first", "last"], "[R] first conv, classifier float"),
    ]
    return out


CHECKS: list[tuple] = [c for s in CNN_CIFAR for c in _cifar_checks(s)]
for _s in ("cnn_width", "cnn_depth", "cnn_mobilenet", "cnn_blocks"):  # Figs. 6-8: 2-bit weights / activations
    CHECKS += [
        (_s, {"method": "W2"}, "recipe.quant.weight", {"name": "uniform", "bits": 2}, BOO_QUANT + " ([18]: L2 step)"),
        (_s, {"method": "W2A2"}, "recipe.quant.weight", {"name": "uniform", "bits": 2}, BOO_QUANT),
        (_s, {"method": "A2"}, "recipe.quant.rules.*qa?.act.name", "pact", BOO_QUANT + " (Fig. 4's QA points)"),
        (_s, {"method": "A2"}, "recipe.quant.rules.*qa?.act.bits", 2, "BOO Figs. 6-8: 2-bit activations"),
        (_s, {"method": "W2A2"}, "recipe.quant.rules.*qra.act.name", "pact", BOO_QUANT + " (QRA points, Fig. 4)"),
    ]

CHECKS += [
    # cnn_width / cnn_depth / cnn_mobilenet / cnn_blocks: the grids of Figs. 6-8 and Table 5
    (
        "cnn_width",
        {},
        "axes.model",
        ["x1", "x2", "x4", "x6", "x8", "x10"],
        "BOO §5.2: 'the width multiplier ranges from x1 to x10'",
    ),
    (
        "cnn_depth",
        {},
        "axes.model",
        ["resnet20", "resnet32", "resnet56", "resnet110"],
        "BOO §5.2: 'The number of layers is either 20, 32, 56, or 110'",
    ),
    (
        "cnn_blocks",
        {},
        "axes.model",
        [
            "basic-8",
            "basic-14",
            "basic-20",
            "basic-32",
            "basic-44",
            "basic-56",
            "preact-8",
            "preact-14",
            "preact-20",
            "preact-32",
            "preact-44",
            "preact-56",
            "dw-29",
            "dw-38",
            "dw-56",
            "dw-74",
            "dw-110",
        ],
        "BOO Appendix D, Table 5: the 17 configurations",
    ),
    (
        "cnn_mobilenet",
        {},
        "axes.model",
        ["x0.25", "x0.35", "x0.5", "x0.75", "x1.0", "x1.4"],
        "BOO §5.2 / Fig. 7: MobileNetV2 width multipliers",
    ),
    # cnn_retrain: Table 4 (2 bits) and the Table 3 grid; CLR per §5.4 and Appendix B's period
    (
        "cnn_retrain",
        {"method": "lip"},
        "recipe.train.lipschitz",
        1e-4,
        "BOO §5.4: 'L_Lip is added to the loss with a factor of 1e-4'",
    ),
    ("cnn_retrain", {"method": "lip+clr"}, "recipe.train.lipschitz", 1e-4, "BOO §5.4: 'L_Lip + CLR'"),
    (
        "cnn_retrain",
        {"method": "lip+clr"},
        "recipe.train.schedule",
        "cyclical",
        "BOO §4.2: 'The learning rate changes 8 times in one cycle'",
    ),
    ("cnn_retrain", {"method": "lip+clr"}, "recipe.train.epochs", 40, "BOO §5.4: 'CLR is applied for 40 epochs'"),
    (
        "cnn_retrain",
        {"method": "lip+clr"},
        "recipe.train.lr",
        1e-3,
        "BOO §5.4: 'with the learning rates between 1e-3 and 1e-5' (the chosen reading; spec §11.19)",
    ),
    (
        "cnn_retrain",
        {"method": "lip+clr"},
        "recipe.train.cycle_stage",
        1,
        "BOO Appendix B: 'The cycle period is 8 epochs, thus the LR scaling factor changes at every epoch'",
    ),
    ("cnn_retrain", {"kind": "qat"}, "axes.bits", [2, 3, 4, 6, 8], "BOO Table 4 (2 bits) and Table 3's 8/6/4/3 grid"),
    ("cnn_retrain", {"kind": "qat"}, "recipe.quant.rules.*qa?.act.name", "pact", BOO_QUANT),
    # spirals (BOO §3): data and models as published; activations PACT (BOO §2) in tests' xfail checks below
    ("spirals", {}, "data.noise", "std", "BOO §3.1 Eq. 7: 'ε ~ N(0, 1/3 r I)' (σ = r/3, spec §11.21)"),
    (
        "spirals",
        {},
        "data.subset",
        0,
        "BOO §3.1: 'the total number of datasets used for training is 10,000 for each label'",
    ),
    (
        "spirals",
        {},
        "axes.model",
        ["128-3", "128-4", "256-3", "200-4", "128-6", "128-8", "res 128-4", "res 128-8"],
        "BOO Figs. 1-3, 9-10: the FCDNNs shown",
    ),
    (
        "spirals",
        {"method": "W2"},
        "recipe.quant.weight",
        {"name": "uniform", "bits": 2},
        "BOO Fig. 2: 2-bit weights, method [18]",
    ),
    # classification: SEED §3.2
    ("classification", {}, "data", {"name": "imagenet"}, "SEED §3.2: 'We adopt the ILSVRC-2012 dataset'"),
    ("classification", {}, "recipe.train.device", "auto", "issue 28: runs on a GPU unchanged"),
    (
        "classification",
        {"model": "vgg16", "kind": "float"},
        "model",
        {"name": "vgg16", "width": 1.0, "fc_hidden": 4096, "dropout": 0.5, "batch_norm": False},
        "SEED §3.2: 'VGG-16 (Simonyan and Zisserman, 2014) is adopted'",
    ),
    (
        "classification",
        {"method": "INQ"},
        "recipe.max_value",
        4.0,
        "SEED §3.2: 'the max value of the quantized weights is set to 4.0'",
    ),
    (
        "classification",
        {"method": "INQ"},
        "recipe.portions",
        [0.5, 0.75, 0.875, 1.0],
        "SEED §3.2: 'accumulated portions ... {50%, 75%, 87.5%, 100%}'",
    ),
    (
        "classification",
        {"method": "INQ"},
        "recipe.strategy",
        "magnitude",
        "SEED §2: 'We adopt pruning-inspired partition strategy'",
    ),
    ("classification", {"method": "INQ"}, "recipe.train.lr", 1e-4, "SEED §3.2: 'Learning rate is set to 1e-4'"),
    (
        "classification",
        {"method": "INQ"},
        "recipe.train.schedule",
        "inverse_time",
        "SEED §3.2: 'with learning rate decay as 1e-6' (Keras' decay)",
    ),
    ("classification", {"method": "INQ"}, "recipe.train.gamma", 1e-6, "SEED §3.2: 'learning rate decay as 1e-6'"),
    (
        "classification",
        {"method": "INQ"},
        "recipe.train.optimizer",
        "sgd",
        "SEED §3.2: 'Stochastic gradient descent (SGD) function is selected'",
    ),
    ("classification", {"method": "INQ"}, "recipe.train.momentum", 0.9, "SEED §3.2: 'Momentun of 0.9 is used'"),
    (
        "classification",
        {"method": "INQ", "model": "vgg16"},
        "axes.bits",
        [2, 3, 4, 5, 6, 7, 8, 9],
        "SEED Table 5: 2 to 9 bits",
    ),
    (
        "classification",
        {"method": "INQ", "model": "small5"},
        "axes.bits",
        [4, 8],
        "SEED §3.2: 'we compare 4 bits quantization and 8 bits quantization'",
    ),
    ("classification", {"method": "E_INQ"}, "axes.bits", [8], "SEED Table 6: 'VGG-16 with 8 bits'"),
    (
        "classification",
        {"method": "E_float"},
        "axes.members",
        [1, 2, 3, 4, 5, 6, 7],
        "SEED Table 6: parallel numbers 2 to 7",
    ),
    (
        "classification",
        {"kind": "float"},
        "recipe.train.epochs",
        90,
        "[R] torchvision's VGG recipe (SEED starts from a pretrained VGG-16)",
    ),
    ("classification", {"method": "INQ"}, "recipe.train.epochs", 4, "[R] epochs per portion: not stated"),
    # speech: SEED §3.3
    (
        "speech",
        {},
        "data.name",
        "timit",
        "SEED §3.3: 'We adopt the DARPA TIMIT Acoustic-Phonetic Continuous Speech Corpus'",
    ),
    ("speech", {}, "data.test_set", "core", "[R] the standard core test set (the SEED gives no split)"),
    ("speech", {}, "recipe.train.device", "auto", "issue 28: runs on a GPU unchanged"),
    ("speech", {"kind": "float"}, "recipe.train.lr", 1e-4, "SEED §3.3: 'we set learning rate to 1e-4'"),
    ("speech", {"method": "INQ"}, "recipe.train.lr", 1e-4, "SEED §3.3: 'we set learning rate to 1e-4'"),
    ("speech", {}, "recipe.train.schedule", "inverse_time", "SEED §3.3: 'with a learning rate decay of 1e-6'"),
    ("speech", {}, "recipe.train.gamma", 1e-6, "SEED §3.3: 'a learning rate decay of 1e-6'"),
    ("speech", {}, "recipe.train.optimizer", "sgd", "issue 28 / SEED §3.2's optimizer (SGD, momentum 0.9)"),
    ("speech", {"method": "INQ"}, "recipe.portions", [0.5, 0.75, 0.875, 1.0], "SEED §3.2's portions (INQ as in §2)"),
    ("speech", {"method": "INQ", "model": "full"}, "axes.bits", [2, 3, 4, 5, 6, 7, 8, 9], "SEED Table 8: 2 to 9 bits"),
    ("speech", {"method": "INQ", "model": "small"}, "axes.bits", [4, 8], "SEED Table 10: '4 bits and 8 bits'"),
    ("speech", {"method": "E_INQ"}, "axes.bits", [9], "SEED Table 9: 'Deep Speech with 9 bits'"),
    ("speech", {"method": "E_float"}, "axes.members", [1, 2, 3, 4, 5, 6, 7], "SEED Table 9: parallel numbers 2 to 7"),
    ("speech_timit", {}, "recipe.train.device", "auto", "issue 28: runs on a GPU unchanged"),
    ("speech_timit", {}, "recipe.train.lr", 1e-4, "SEED §3.3: 'we set learning rate to 1e-4'"),
    ("speech_timit", {}, "recipe.train.gamma", 1e-6, "SEED §3.3: 'a learning rate decay of 1e-6'"),
    # segmentation: SEED §3.1
    ("segmentation", {}, "data.name", "glas", "SEED §3.1: 'We adopt the 2015 MICCAI Gland Challenge dataset'"),
    ("segmentation", {}, "data.test_part", "test", "SEED §3.1: '85 training images ... and 80 testing images'"),
    ("segmentation", {}, "recipe.train.device", "auto", "issue 28: runs on a GPU unchanged"),
    (
        "segmentation",
        {"kind": "float"},
        "recipe.train.lr",
        5e-4,
        "SEED §3.1: 'set learning rate to 5e-4 in the initial stage'",
    ),
    (
        "segmentation",
        {"method": "INQ"},
        "recipe.train.lr",
        5e-4,
        "SEED §3.1: 'set learning rate to 5e-4 in the initial stage'",
    ),
    (
        "segmentation",
        {"kind": "float"},
        "recipe.train.gamma",
        0.1,
        "SEED §3.1: '... and to 5e-5 when the iteration time reaches a threshold'",
    ),
    (
        "segmentation",
        {"kind": "float"},
        "recipe.train.schedule",
        "step",
        "SEED §3.1: '... and to 5e-5 when the iteration time reaches a threshold'",
    ),
    (
        "segmentation",
        {"model": "full", "kind": "float"},
        "model.width",
        1.0,
        "SEED §3.1: 'The FCN is a 34 layer network' (Yang et al.)",
    ),
    (
        "segmentation",
        {"model": "half", "kind": "float"},
        "model.name",
        "fcn_sa_half",
        "SEED §3.1: 'reducing the filter numbers by half'",
    ),
    (
        "segmentation",
        {"method": "INQ", "model": "full"},
        "axes.bits",
        [2, 3, 4, 5, 6, 7, 8, 9],
        "SEED §3.1: 'We quantize the weights to 2 bits to 9 bits'",
    ),
    (
        "segmentation",
        {"method": "INQ", "model": "full"},
        "axes.seed",
        [0, 1, 2, 3, 4, 5, 6],
        "SEED Tables 2-3: up to 7 FCNs; 'repeated 4 times' (seeds 0-3 for the sweep's best-of-4)",
    ),
    (
        "segmentation",
        {"method": "E_float"},
        "axes.members",
        [1, 2, 3, 4, 5, 6, 7],
        "SEED §3.1: 'We test 2 FCNs to 7 FCNs'",
    ),
    (
        "segmentation",
        {"kind": "float", "model": "half"},
        "axes.seed",
        [0, 1, 2, 3],
        "SEED §3.1: 'All the configurations are repeated 4 times'",
    ),
    # cnn_segmentation: BOO §5.1, §5.4, Tables 2-3, Appendix B
    (
        "cnn_segmentation",
        {},
        "task",
        "segmentation_miou",
        "BOO §5.1: 'measured in terms of mean intersection over union (mIOU)'",
    ),
    (
        "cnn_segmentation",
        {},
        "data",
        {"name": "voc2012", "crop": 513},
        "BOO §5.1: 'The PASCAL VOC 2012 dataset [9] is used'",
    ),
    (
        "cnn_segmentation",
        {},
        "model.name",
        "deeplabv3_mobilenetv2",
        "BOO §5.1: 'The MobileNetV2 [34] is adopted, which is trained according to DeepLabV3'",
    ),
    (
        "cnn_segmentation",
        {},
        "model.output_stride",
        16,
        "BOO §5.1: 'The output stride is 16 and ... (ASPP) [3] is not applied'",
    ),
    ("cnn_segmentation", {}, "recipe.train.device", "auto", "issue 28: runs on a GPU unchanged"),
    ("cnn_segmentation", {}, "recipe.train.batch_size", 16, "BOO §5.1: 'with a batch size of 16'"),
    (
        "cnn_segmentation",
        {"method": "W4"},
        "recipe.train.epochs",
        326,
        "BOO §5.1: 'The retraining is conducted for 30K iterations' (326 x 92 = 29,992)",
    ),
    ("cnn_segmentation", {"method": "W4"}, "recipe.train.lr", 1e-3, "BOO §5.1: 'The initial learning rate is 1e-3'"),
    (
        "cnn_segmentation",
        {"method": "W4"},
        "recipe.train.schedule",
        "poly",
        "BOO §5.1: 'the learning rate policy is the same as [4]'",
    ),
    ("cnn_segmentation", {"method": "W4+CLR"}, "recipe.train.lr", 1e-5, "BOO Appendix B: 'We set the base LR to 1e-5'"),
    (
        "cnn_segmentation",
        {"method": "W4+CLR"},
        "recipe.train.schedule",
        "cyclical",
        "BOO §4.2: 'The learning rate changes 8 times in one cycle'",
    ),
    (
        "cnn_segmentation",
        {"method": "W4+CLR"},
        "recipe.train.cycle_stage",
        4,
        "BOO Appendix B: 'The cycle period is 3K iterations' (8 x 4 x 92 = 2,944)",
    ),
    (
        "cnn_segmentation",
        {"method": "W4+CLR"},
        "recipe.train.epochs",
        160,
        "BOO §5.4: 'fine-tuning was performed for 15K iterations (i.e. 5 cycles)'",
    ),
    (
        "cnn_segmentation",
        {"method": "WA+Lip+CLR"},
        "recipe.train.lr",
        1e-5,
        "BOO Appendix B: 'We set the base LR to 1e-5'",
    ),
    (
        "cnn_segmentation",
        {"method": "WA+Lip+CLR"},
        "recipe.train.cycle_stage",
        4,
        "BOO Appendix B: 'The cycle period is 3K iterations'",
    ),
    (
        "cnn_segmentation",
        {"method": "W4+Lip"},
        "recipe.train.lipschitz",
        1e-4,
        "BOO §5.4: 'L_Lip is added to the loss after multiplying the scaling factor of 1e-4'",
    ),
    ("cnn_segmentation", {"method": "WA+Lip"}, "recipe.train.lipschitz", 1e-4, "BOO §5.4: 'scaling factor of 1e-4'"),
    (
        "cnn_segmentation",
        {"method": "WA"},
        "axes.bits",
        [8, 6, 4, 3],
        "BOO Table 3: 'n_W / n_A (bits) 8/8 6/6 4/4 3/3'",
    ),
    ("cnn_segmentation", {"method": "WA"}, "recipe.quant.weight", {"name": "uniform", "bits": "*"}, BOO_QUANT),
    ("cnn_segmentation", {"method": "WA"}, "recipe.quant.rules.*qa?.act.name", "pact", BOO_QUANT),
    (
        "cnn_segmentation",
        {"method": "W4"},
        "recipe.quant.weight",
        {"name": "uniform", "bits": 4},
        "BOO Table 2: 4-bit weights",
    ),
    (
        "cnn_segmentation",
        {"method": "A4"},
        "recipe.quant.rules.*qa?.act",
        {"name": "pact", "bits": 4},
        "BOO Table 2: 4-bit activations, PACT (§2)",
    ),
]

# The spirals' paper scale belongs to the main-job branch (its recipe and PACT activations): checked, xfail there.
SPIRALS_PACT = [
    (
        "spirals",
        {"method": "A2"},
        "recipe.quant.act.name",
        "pact",
        "BOO §2: 'the PACT activation quantization [5] are adopted' (spec §2.3)",
    ),
    ("spirals", {"method": "W2A2"}, "recipe.quant.act.name", "pact", "BOO §2: PACT activations (spec §2.3)"),
    ("spirals", {}, "recipe.train.device", "auto", "issue 28: runs on a GPU unchanged"),
]

# Shipped specs without a paper scale, and why (so that the table covers every shipped spec).
NO_PAPER_SCALE = {
    "cnn_recipe": "a recipe ablation for the default scale, not a paper experiment",
    "suggestive_annotation": "Table 1's loop on ISBI 2012 tiles at CPU size; the seed's GlaS experiment is not shipped",
}

# Shipped studies that are lowbit's own analyses, not a paper's experiment (issue 26: where the bits go): their
# `paper` scale is the GPU-sized version of the study, with no published number to pin; it must still run on a GPU
# unchanged (device "auto" on every trained job).
NOT_FROM_A_PAPER = {
    "mixed_precision": "mixed vs uniform precision at equal bytes (HAWQ-V2-style allocation): lowbit's own study",
    "mixed_precision_fmnist": "the same on a Fashion-MNIST CNN",
    "mixed_precision_resnet20": "the same on ResNet-20 / CIFAR-10",
}
