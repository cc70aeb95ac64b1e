"""Speech data sets a spec can name (task ``ctc``): FSDD connected digits (WER) and the TIMIT sample (PER).

Both give ``Utterances``: items ``(features (T, D), targets (L,))`` and a ``score(token_sequences)`` that turns
greedy-decoded tokens into the error rate of the set (spec §7.3). Features: log-mel with context (spec §7.1,
``FeatureConfig``). Built in memory in every process that needs them (nothing is cached as a pickle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Literal

import torch
from torch.utils.data import Dataset

from ...arguments import Count, Positive, PositiveNumber
from . import Data, register_dataset
from .sizes import DataSizes, sequence_sizes

TIMIT_TEST_SPEAKERS = ("dr8-fbcg1", "dr8-mbcg0")


class Utterances(Dataset):
    def __init__(self, items: list, score: Callable[[list[list[int]]], dict[str, float]]):
        self.items, self._score = items, score

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]

    def score(self, tokens: list[list[int]]) -> dict[str, float]:
        return self._score(tokens)


def _features(n_features: int, hop_ms: float, context: int):
    from ..features import FeatureConfig

    return FeatureConfig("logmel", n_features, 25.0, hop_ms, context)


SPEECH = dict(gives="(N, T, D) sequences (T varies)", task="ctc")


def _fsdd_sizes(a: dict) -> DataSizes:
    """Utterances of 1-7 digits (under 1 s each) joined by 50-250 ms gaps: ~2.5 s on average, 9 s at most;
    11 tokens (blank + ten digit words, ``lowbit.data.fsdd.VOCAB``)."""
    n = a["n_train"] + a["n_test"]
    s = sequence_sizes(n, 2.5, 9.0, a["n_features"], a["hop_ms"], a["context"], 11)
    return replace(s, total_keys=("n_train", "n_test", *s.total_keys))


@register_dataset("fsdd_digits", targets="digit-word token sequences", sizes=_fsdd_sizes, **SPEECH)
def fsdd_digits(
    n_train: Positive = 320,
    n_test: Positive = 200,
    n_features: Positive = 26,
    hop_ms: PositiveNumber = 30.0,
    context: Count = 5,
    seed: Count = 0,
    speed: float = 0.0,
    noise: float = 0.0,
    mask: Count = 0,
    test_speaker: Literal["george", "jackson", "lucas", "nicolas", "yweweler"] = "jackson",  # fsdd.SPEAKERS
) -> Data:
    """FSDD connected digits (``lowbit.data.fsdd``): 1-7 spoken digits per utterance, the test speaker held out
    (default jackson; the other four train); word tokens (blank 0, zero..nine 1..10); WER in %. ``speed``,
    ``noise``, ``mask``: training-set augmentation (``fsdd.Augment``: speed perturbation, noise, SpecAugment-style
    masks; off by default). ``test_speaker`` gives leave-one-speaker-out splits."""
    from ...metrics.speech import wer
    from .. import fsdd

    if test_speaker not in fsdd.SPEAKERS:
        raise ValueError(f"test_speaker={test_speaker!r} is not accepted; expected one of {', '.join(fsdd.SPEAKERS)}")
    fc = _features(n_features, hop_ms, context)
    aug = fsdd.Augment(speed, noise, mask)
    train_speakers = tuple(s for s in fsdd.SPEAKERS if s != test_speaker)
    tr = fsdd.connected_digits("train", n_train, fc, seed=seed, speakers=train_speakers, augment=aug)
    te = fsdd.connected_digits("test", n_test, fc, seed=seed, speakers=(test_speaker,))

    def score(tokens):
        return {"wer": wer([fsdd.decode(s) for s in tokens], te.texts)}

    train = Utterances(tr.items, lambda tokens: {"wer": wer([fsdd.decode(s) for s in tokens], tr.texts)})
    info = {"in_features": fc.input_dim, "num_classes": len(fsdd.VOCAB)}
    desc = f"FSDD connected digits ({n_train} train / {n_test} test utterances, test speaker {test_speaker})"
    return Data(train, Utterances(te.items, score), info, desc)


def _timit_sizes(a: dict) -> DataSizes:
    """160 sentences of ~3 s (8 s at most); 61 labels (60 phones + blank, ``lowbit.data.timit.TRAIN_PHONES``)."""
    return sequence_sizes(160, 3.0, 8.0, a["n_features"], a["hop_ms"], a["context"], 61)


@register_dataset(
    "timit_sample",
    targets="phone sequences",
    sizes=_timit_sizes,
    locate=lambda a: [("timit-sample", "the 160-utterance TIMIT sample (<speaker>/<utt>.wav + .phn)", a["root"])],
    counts=lambda a: (140, 20),  # with the default two held-out dr8 speakers
    **SPEECH,
)
def timit_sample(
    root: str = "",
    n_features: Positive = 26,
    hop_ms: PositiveNumber = 30.0,
    context: Count = 5,
    test_speakers: tuple[str, ...] = TIMIT_TEST_SPEAKERS,
) -> Data:
    """The 160-utterance TIMIT sample (shared ``timit-sample`` or ``root``): the ``test_speakers`` (dr8) held out,
    the rest trained on; 60 phones + blank as CTC targets, PER on the 39 folded phones."""
    from .. import timit
    from ..paths import require_shared

    fc = _features(n_features, hop_ms, context)
    utts = timit.scan(root or require_shared("timit-sample"))
    tr = [u for u in utts if u.speaker not in test_speakers]
    te = [u for u in utts if u.speaker in test_speakers]
    if not te:
        te, tr = tr[-len(tr) // 8 :], tr[: -len(tr) // 8]
    return _timit_utterances(
        tr, te, fc, f"TIMIT sample ({len(tr)} train / {len(te)} test utterances, PER on 39 folded phones)"
    )


# The TIMIT core test set (24 speakers, 192 SI/SX sentences; Halberstadt 1998, the list every TIMIT recipe uses).
TIMIT_CORE_TEST = (
    "mdab0 mwbt0 felc0 mtas1 mwew0 fpas0 mjmp0 mlnt0 fpkt0 mlll0 mtls0 fjlm0 "
    "mbpm0 mklt0 fnlp0 mcmj0 mjdh0 fmgd0 mgrt0 mnjm0 fdhc0 mjln0 mpam0 fmld0"
).split()
TIMIT_WHAT = "the TIMIT corpus (TRAIN/ and TEST/, each DR1..DR8/<speaker>/<utt>.WAV + .PHN; NIST SPHERE or RIFF)"


def _timit_full_sizes(a: dict) -> DataSizes:
    """3,696 training + 192 core-test sentences (1,344 for the complete test set) of ~3 s (8 s at most)."""
    n = 3696 + (192 if a["test_set"] == "core" else 1344)
    return sequence_sizes(n, 3.1, 8.0, a["n_features"], a["hop_ms"], a["context"], 61)


def _timit_locate(a: dict) -> list[tuple[str, str, str]]:
    return [("timit", TIMIT_WHAT, a["root"])]


def _split_folder(base, name: str):
    """TRAIN / TEST in any case (the LDC discs use upper case, many copies lower case)."""
    for p in base.iterdir():
        if p.is_dir() and p.name.lower() == name:
            return p
    raise FileNotFoundError(f"TIMIT: no {name.upper()}/ folder in {str(base)!r}; expected {TIMIT_WHAT}")


@register_dataset(
    "timit",
    targets="phone sequences",
    sizes=_timit_full_sizes,
    locate=_timit_locate,
    counts=lambda a: (4620 if a["keep_sa"] else 3696, 192 if a["test_set"] == "core" else 1344),
    **SPEECH,
)
def timit_full(
    root: str = "",
    n_features: Positive = 26,
    hop_ms: PositiveNumber = 10.0,
    context: Count = 9,
    test_set: Literal["core", "complete"] = "core",
    keep_sa: bool = False,
) -> Data:
    """The full TIMIT corpus (``root`` or ``<data root>/timit``): trained on TRAIN/ (the SA1/SA2 dialect sentences
    left out unless ``keep_sa``: every speaker reads them, the standard recipes drop them; 3,696 sentences), scored
    on TEST/'s 24-speaker core test set (192 SI/SX sentences) or its complete SI/SX set (1,344); 60 phones + blank
    as CTC targets, PER on the 39 folded phones (spec §7.3), as ``timit_sample``."""
    from ..paths import require_data

    base = require_data("timit", TIMIT_WHAT, root)
    train_dir, test_dir = _split_folder(base, "train"), _split_folder(base, "test")
    return _timit_data(train_dir, test_dir, n_features, hop_ms, context, test_set, keep_sa)


def _timit_data(train_dir, test_dir, n_features, hop_ms, context, test_set, keep_sa) -> Data:
    from .. import timit

    def keep(u) -> bool:
        return keep_sa or not u.wav.stem.lower().startswith("sa")

    tr = [u for u in timit.scan(train_dir) if keep(u)]
    te = [u for u in timit.scan(test_dir) if not u.wav.stem.lower().startswith("sa")]
    if test_set == "core":
        te = [u for u in te if u.speaker.lower() in TIMIT_CORE_TEST]
        if not te:
            raise FileNotFoundError(f"TIMIT: none of the 24 core-test speakers is in {str(test_dir)!r}")
    fc = _features(n_features, hop_ms, context)
    return _timit_utterances(
        tr, te, fc, f"TIMIT ({len(tr):,} train / {len(te):,} {test_set} test sentences, PER on 39 folded phones)"
    )


def _timit_utterances(tr: list, te: list, fc, desc: str) -> Data:
    """TIMIT utterances (the sample's or the full corpus's) as features + phone targets, scored by PER."""
    from ...metrics.speech import per
    from .. import timit
    from ..features import utterance_features

    def items(us):
        out = []
        for u in us:
            audio, sr = timit.read_audio(u.wav)
            out.append((utterance_features(audio, sr, fc), torch.tensor(timit.phone_targets(u.phones))))
        return out

    def scorer(us):
        refs = [timit.reference_phones(u.phones) for u in us]

        def score(tokens):
            hyps = [timit.score_phones(s) for s in tokens]
            return {"per": per(hyps, refs), "mean_hyp_len": sum(map(len, hyps)) / max(1, len(hyps))}

        return score

    info = {"in_features": fc.input_dim, "num_classes": len(timit.TRAIN_PHONES) + 1}
    return Data(Utterances(items(tr), scorer(tr)), Utterances(items(te), scorer(te)), info, desc)
