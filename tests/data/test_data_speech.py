"""Speech data: FSDD connected digits, TIMIT (RIFF and hand-written NIST SPHERE), features, collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.data_files import sphere_bytes, write_fsdd, write_timit

from lowbit.data import fsdd, timit
from lowbit.data.features import FeatureConfig, add_context, frames, normalise, utterance_features
from lowbit.data.paths import shared_data_dir
from lowbit.data.speech_collate import speech_collate

# ---------------------------------------------------------------- features


def test_context_zero_padded_edges():
    x = torch.arange(1.0, 7.0).reshape(3, 2)  # frames [1,2], [3,4], [5,6]
    c = add_context(x, 1)
    assert c.shape == (3, 6)
    assert c[0].tolist() == [0, 0, 1, 2, 3, 4]
    assert c[1].tolist() == [1, 2, 3, 4, 5, 6]
    assert c[2].tolist() == [3, 4, 5, 6, 0, 0]
    assert torch.equal(add_context(x, 0), x)
    with pytest.raises(ValueError, match="context"):
        add_context(x, -1)


def test_normalise_per_utterance():
    x = torch.randn(50, 4) * 3 + 7
    n = normalise(x)
    assert torch.allclose(n.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(n.std(0, unbiased=False), torch.ones(4), atol=1e-3)
    assert torch.equal(normalise(torch.zeros(5, 3)), torch.zeros(5, 3))  # constant: 0/(0+eps), no NaN


@pytest.mark.slow
def test_frames_shape_and_kinds():
    sr = 8000
    audio = np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    lm = frames(audio, sr, FeatureConfig("logmel", 26, 25.0, 10.0, 0))
    assert lm.shape == (101, 26) and lm.dtype == np.float32  # centred frames: 1 + 8000 // 80
    mf = frames(audio, sr, FeatureConfig("mfcc", 13, 25.0, 20.0, 0))
    assert mf.shape == (51, 13)
    x = utterance_features(audio, sr, FeatureConfig(context=2, n_features=10))
    assert x.shape == (101, 50)
    with pytest.raises(ValueError, match="kind"):
        FeatureConfig(kind="spectrogram")
    with pytest.raises(ValueError, match="mono"):
        frames(np.zeros((2, 100)), sr, FeatureConfig())


def test_collate_pads_and_concatenates():
    items = [(torch.ones(3, 2), torch.tensor([1, 2])), (torch.full((5, 2), 2.0), torch.tensor([3]))]
    x, xl, y, yl = speech_collate(items)
    assert x.shape == (2, 5, 2) and xl.tolist() == [3, 5] and y.tolist() == [1, 2, 3] and yl.tolist() == [2, 1]
    assert x[0, 3:].abs().sum() == 0 and x[1].eq(2).all()
    with pytest.raises(ValueError, match="dimensions"):
        speech_collate([(torch.ones(3, 2), torch.tensor([1])), (torch.ones(3, 4), torch.tensor([1]))])


# ---------------------------------------------------------------- FSDD


@pytest.mark.slow
def test_fsdd_connected_digits(tmp_path):
    root = write_fsdd(tmp_path / "rec")
    fc = FeatureConfig(hop_ms=20.0, context=1)
    ds = fsdd.connected_digits("train", 6, fc, seed=3, root=root, max_digits=4)
    assert len(ds) == 6
    for (x, y), text, u in zip(ds.items, ds.texts, ds.utterances):
        assert x.shape[1] == fc.input_dim
        assert u.speaker in fsdd.TRAIN_SPEAKERS
        assert 1 <= len(u.digits) <= 4 and len(y) == len(u.digits)
        assert fsdd.decode(y.tolist()) == text == " ".join(fsdd.DIGIT_WORDS[d] for d in u.digits)
        assert all(f"_{u.speaker}_" in f for f in u.files)  # one speaker per utterance
        # >= 1 frame per 20 ms of audio: digits (0.15 s) + gaps (>= 50 ms each)
        assert x.shape[0] >= (0.15 * len(u.digits) + 0.05 * (len(u.digits) + 1)) / 0.02
    again = fsdd.connected_digits("train", 6, fc, seed=3, root=root, max_digits=4)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(ds.items, again.items))  # deterministic from the seed
    test = fsdd.connected_digits("test", 4, fc, seed=3, root=root)
    assert {u.speaker for u in test.utterances} == set(fsdd.TEST_SPEAKERS)
    assert not set(fsdd.TRAIN_SPEAKERS) & set(fsdd.TEST_SPEAKERS)


def test_fsdd_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fsdd.index_recordings(tmp_path / "nope")
    root = write_fsdd(tmp_path / "rec", speakers=("george",), takes=1)
    idx = fsdd.index_recordings(root)
    with pytest.raises(ValueError, match="not all in the recordings"):
        fsdd.make_utterances(idx, ("jackson",), 2, 0)
    with pytest.raises(ValueError, match="split"):
        fsdd.connected_digits("dev", 2, FeatureConfig(), root=root)
    with pytest.raises(ValueError, match="digit words"):
        fsdd.encode(["ten"])
    assert fsdd.encode(["zero", "nine"]).tolist() == [1, 10]


# ---------------------------------------------------------------- TIMIT


def test_fold_61_to_39():
    assert len(timit.PHONES61) == 61 and len(timit.PHONES39) == 39
    assert timit.fold39(["ao", "ax-h", "ix", "zh", "pcl", "h#", "q", "iy"]) == [
        "aa",
        "ah",
        "ih",
        "sh",
        "sil",
        "sil",
        "iy",
    ]
    assert timit.reference_phones(["h#", "sh", "q", "ix", "epi", "h#"]) == ["sh", "ih", "sil"]
    with pytest.raises(ValueError, match="not TIMIT phones"):
        timit.fold39(["xx"])
    assert len(timit.TRAIN_PHONES) == 60 and "h#" not in timit.TRAIN_PHONES
    ids = timit.phone_targets(["h#", "sh", "ix", "h#"])
    assert timit.score_phones(ids) == ["sh", "ih"]


@pytest.mark.parametrize("order", ["01", "10"])
def test_sphere_reader_matches_samples(tmp_path, order):
    pcm = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    p = tmp_path / "a.wav"
    p.write_bytes(sphere_bytes(pcm, sr=16000, order=order))
    audio, sr = timit.read_audio(p)
    assert sr == 16000
    assert np.array_equal(audio, pcm.astype(np.float32) / 32768.0)


def test_sphere_refuses_compressed(tmp_path):
    p = tmp_path / "a.wav"
    p.write_bytes(sphere_bytes(np.zeros(4, np.int16), extra="sample_coding -s26 pcm,embedded-shorten-v2.00\n"))
    with pytest.raises(ValueError, match="sample_coding"):
        timit.read_sphere(p)
    q = tmp_path / "b.wav"
    q.write_bytes(b"RIFF0000")
    with pytest.raises(ValueError, match="NIST_1A"):
        timit.read_sphere(q)


@pytest.mark.parametrize("sphere", [False, True])
def test_timit_scan(tmp_path, sphere):
    root = write_timit(tmp_path / "timit", sphere=sphere)
    utts = timit.scan(root)
    assert len(utts) == 8 and utts[0].id == "dr1-fa/sa1"
    u = utts[0]
    assert u.phones == ["h#", "sh", "ix", "q", "bcl", "h#"] and u.words == ["she"] and u.text == "She."
    audio, sr = timit.read_audio(u.wav)
    assert sr == 16000 and audio.shape == (4800,)
    with pytest.raises(FileNotFoundError):
        timit.scan(tmp_path / "empty")


def test_timit_bad_segment_line(tmp_path):
    p = tmp_path / "x.phn"
    p.write_text("0 10\n")
    with pytest.raises(ValueError, match="start end label"):
        timit.read_segments(p)


# ---------------------------------------------------------------- the real shared sets (skip when absent)

REAL = shared_data_dir()


@pytest.mark.skipif(not (REAL / "fsdd/recordings").is_dir(), reason=f"FSDD not found under {REAL} (set LOWBIT_DATA)")
def test_real_fsdd_index():
    idx = fsdd.index_recordings(REAL / "fsdd/recordings")
    assert {s for s, _ in idx} == set(fsdd.SPEAKERS)
    assert sum(len(v) for v in idx.values()) == 2500 and all(len(v) == 50 for v in idx.values())


@pytest.mark.skipif(not (REAL / "timit-sample").is_dir(), reason=f"TIMIT sample not found under {REAL}")
def test_real_timit_sample():
    utts = timit.scan(REAL / "timit-sample")
    assert len(utts) == 160 and len({u.speaker for u in utts}) == 16
    for u in utts:
        assert u.phones[0] == "h#" and u.phones[-1] == "h#"
        timit.reference_phones(u.phones)  # every phone folds
    audio, sr = timit.read_audio(utts[0].wav)
    assert sr == 16000 and audio.ndim == 1 and len(audio) > 16000
