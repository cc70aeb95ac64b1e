"""The speech study (seed §3.3, Tables 8-10 of the text version): Deep Speech + INQ on connected digits.

Data: FSDD connected digits (``lowbit.data.fsdd``; train speakers george/lucas/nicolas/yweweler, test speaker
jackson), log-mel features with context (spec §7.1), word-token CTC. Jobs:

- ``member<k>`` (k < members): a float Deep Speech from seed k; for k < sweep_seeds INQ from its float weights
  at every bit width in ``bits``; every member also gets INQ at ``ensemble_bits`` (the quantized ensemble).
- ``small<k>``: the small model (no FC2/FC3) float, then INQ at ``small_bits``.
- ``timit``: the same network on the 160-utterance TIMIT sample (14 train / 2 test speakers), PER on 39 phones.

INQ follows spec §1.3 (portions 0.5/0.75/0.875/1, magnitude strategy, lr schedule restarted per stage, no
retraining after the last portion) on every Linear: W1..W6, W4 and the recurrent Wf, Wb; biases stay float.
Ensembles average the members' per-frame posteriors, then decode greedily. WER is the corpus ratio (spec §7.3).
Memory = bits as stored: b per INQ weight, 32 per float parameter.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import tomlio
from ..data import fsdd, timit
from ..data.features import FeatureConfig, utterance_features
from ..data.speech_collate import speech_collate
from ..fileio import atomic_savefig, atomic_write_text
from ..metrics.speech import per, wer
from ..models import create_model
from ..models.deepspeech import ctc_loss, greedy_decode
from ..serialize import save_model
from ..train import TrainConfig, fit, fit_inq
from ..train.ensemble import average_probs
from ..train.loop import load_model_state
from .jobs import Job, load_result, run_jobs
from .memory import weight_memory
from .registry import register_study
from .report import Figure, Report, Table, mean_std
from .runfolder import start_run_folder

PAPER = {  # seed Tables 8-10 (Deep Speech on TIMIT, "error rate %")
    "float": 48.13,
    "bits": {2: 60.33, 3: 64.30, 4: 69.53, 5: 52.93, 6: 47.20, 7: 49.50, 8: 52.40, 9: 44.70},
    "ens_float": {1: 48.13, 2: 45.37, 3: 47.30, 4: 43.93, 5: 42.83, 6: 46.23, 7: 43.30},
    "ens_q9": {1: 48.13, 2: 43.90, 3: 46.17, 4: 48.07, 5: 48.83, 6: 53.90, 7: 45.53},
    "small": {"float": 50.04, 4: 47.05, 8: 47.08},
}


@dataclass(frozen=True)
class Scale:
    n_train: int
    n_test: int
    hidden: int
    float_epochs: int
    inq_epochs: int  # retraining epochs per INQ stage (3 stages: portions 0.5, 0.75, 0.875)
    members: int  # ensemble members (N = 1..members)
    sweep_seeds: int  # seeds of the bit sweep (the first members)
    bits: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9)
    ensemble_bits: int = 9  # the paper's quantized ensemble (Table 9)
    small_bits: tuple[int, ...] = (4, 8)
    small_seeds: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    inq_lr: float = 3e-4
    context: int = 5
    hop_ms: float = 30.0
    n_features: int = 26
    dropout: float = 0.05
    timit_epochs: int = 0  # 0 = no TIMIT job
    timit_bits: tuple[int, ...] = (4, 8)

    def features(self) -> FeatureConfig:
        return FeatureConfig("logmel", self.n_features, 25.0, self.hop_ms, self.context)


SCALES = {
    "tiny": Scale(24, 12, 16, 1, 1, 2, 1, bits=(2, 9), small_bits=(4,), small_seeds=1, timit_epochs=1, timit_bits=(8,)),
    "default": Scale(
        320, 200, 96, 15, 1, 7, 2, small_seeds=2, batch_size=16, lr=3e-3, inq_lr=1e-3, hop_ms=30.0, timit_epochs=15
    ),
    "paper": Scale(
        6000, 1000, 1024, 60, 5, 7, 3, small_seeds=3, batch_size=32, context=9, hop_ms=10.0, timit_epochs=100
    ),
}


def _data_path(out: Path, name: str) -> Path:
    return out / "data" / f"{name}.pt"


def prepare_data(out: Path, sc: Scale) -> None:
    """Build the FSDD train/test sets once (main process) and cache them for the jobs."""
    fc = sc.features()
    for split, n in (("train", sc.n_train), ("test", sc.n_test)):
        p = _data_path(out, f"fsdd_{split}")
        if not p.exists():
            ds = fsdd.connected_digits(split, n, fc, seed=0)
            p.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"items": ds.items, "texts": ds.texts}, p)


class _Items(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _load(out: Path, name: str):
    d = torch.load(_data_path(out, name), weights_only=False)
    return _Items(d["items"]), d["texts"]


@torch.no_grad()
def test_probs(model: torch.nn.Module, data: _Items, batch: int = 64) -> list[torch.Tensor]:
    """Per-utterance frame posteriors (T_i, C), in data order."""
    model.eval()
    out: list[torch.Tensor] = [None] * len(data)  # type: ignore[list-item]
    order = sorted(range(len(data)), key=lambda i: data[i][0].shape[0])  # similar lengths pad less
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        x, xl, _, _ = speech_collate([data[i] for i in idx])
        p = torch.softmax(model(x, xl), -1)
        for j, i in enumerate(idx):
            out[i] = p[j, : int(xl[j])].clone()
    return out


def decode_probs(probs: list[torch.Tensor]) -> list[list[int]]:
    return [greedy_decode(p.unsqueeze(0))[0] for p in probs]


def digits_wer(probs: list[torch.Tensor], texts: list[str]) -> float:
    return wer([fsdd.decode(s) for s in decode_probs(probs)], texts)


def _cfgs(sc: Scale, seed: int) -> tuple[TrainConfig, TrainConfig]:
    f = TrainConfig(epochs=sc.float_epochs, batch_size=sc.batch_size, lr=sc.lr, seed=seed, grad_clip=5.0)
    q = TrainConfig(epochs=sc.inq_epochs, batch_size=sc.batch_size, lr=sc.inq_lr, seed=seed, grad_clip=5.0)
    return f, q


def _train_float(job_dir, resume, progress, name, kwargs, train, cfg):
    torch.manual_seed(cfg.seed)
    net = create_model(name, **kwargs)
    final = job_dir / "float" / "model.safetensors"
    if resume and final.exists():
        load_model_state(final, net)
    else:
        fit(
            net,
            train,
            cfg,
            loss_fn=ctc_loss,
            collate=speech_collate,
            run_dir=job_dir / "float",
            resume=resume,
            progress=progress,
            desc=f"{name} float",
        )
        save_model(final, net, name, **kwargs)
    return net


def _inq(net, train, cfg, bits, run_dir, resume, progress):
    m = copy.deepcopy(net)
    inq, _ = fit_inq(
        m,
        train,
        cfg,
        bits=bits,
        loss_fn=ctc_loss,
        collate=speech_collate,
        run_dir=run_dir,
        resume=resume,
        progress=progress,
    )
    return m, inq.check()


def member_job(job_dir: Path, resume: bool, progress: bool, out: str, scale: str, seed: int, small: bool) -> dict:
    """One float model from ``seed`` and its INQ retrainings; posteriors saved for the ensembles."""
    sc = SCALES[scale]
    train, _ = _load(Path(out), "fsdd_train")
    test, texts = _load(Path(out), "fsdd_test")
    name = "deepspeech_small" if small else "deepspeech"
    kwargs = dict(n_input=sc.features().input_dim, n_hidden=sc.hidden, n_classes=len(fsdd.VOCAB), dropout=sc.dropout)
    fcfg, qcfg = _cfgs(sc, seed)
    net = _train_float(job_dir, resume, progress, name, kwargs, train, fcfg)
    probs = test_probs(net, test)
    res = {"model": name, "seed": seed, "results": {"float": {"wer": digits_wer(probs, texts), **weight_memory(net)}}}
    if not small:
        torch.save(probs, job_dir / "probs_float.pt")
    if small:
        bits = sc.small_bits
    else:
        bits = tuple(b for b in sc.bits if seed < sc.sweep_seeds or b == sc.ensemble_bits)
        bits = bits if sc.ensemble_bits in bits else (*bits, sc.ensemble_bits)
    for b in bits:
        m, ok = _inq(net, train, qcfg, b, job_dir / f"inq{b}", resume, progress)
        probs = test_probs(m, test)
        if b == sc.ensemble_bits and not small:
            torch.save(probs, job_dir / f"probs_inq{b}.pt")
        res["results"][f"inq{b}"] = {"wer": digits_wer(probs, texts), "on_codebook": ok, **weight_memory(m)}
    return res


TIMIT_TEST_SPEAKERS = ("dr8-fbcg1", "dr8-mbcg0")


def _timit_items(utts, fc: FeatureConfig):
    items = []
    for u in utts:
        audio, sr = timit.read_audio(u.wav)
        items.append((utterance_features(audio, sr, fc), torch.tensor(timit.phone_targets(u.phones))))
    return _Items(items)


def timit_job(job_dir: Path, resume: bool, progress: bool, scale: str, root: str | None = None) -> dict:
    """Deep Speech on the TIMIT sample: train 14 speakers, test 2 (dr8), PER on the 39 folded phones."""
    sc = SCALES[scale]
    from ..data.paths import require_shared

    utts = timit.scan(root or require_shared("timit-sample"))
    fc = sc.features()
    tr = [u for u in utts if u.speaker not in TIMIT_TEST_SPEAKERS]
    te = [u for u in utts if u.speaker in TIMIT_TEST_SPEAKERS]
    if not te:
        te, tr = tr[-len(tr) // 8 :], tr[: -len(tr) // 8]
    train, test = _timit_items(tr, fc), _timit_items(te, fc)
    refs = [timit.reference_phones(u.phones) for u in te]
    kwargs = dict(n_input=fc.input_dim, n_hidden=sc.hidden, n_classes=len(timit.TRAIN_PHONES) + 1, dropout=sc.dropout)
    fcfg = TrainConfig(epochs=sc.timit_epochs, batch_size=16, lr=sc.lr, seed=0, grad_clip=5.0)
    qcfg = TrainConfig(epochs=max(1, sc.timit_epochs // 10), batch_size=16, lr=sc.inq_lr, seed=0, grad_clip=5.0)
    net = _train_float(job_dir, resume, progress, "deepspeech", kwargs, train, fcfg)

    def score(m):
        hyps = [timit.score_phones(s) for s in decode_probs(test_probs(m, test))]
        return {"per": per(hyps, refs), "mean_hyp_len": sum(map(len, hyps)) / len(hyps)}

    res = {"train_utts": len(tr), "test_utts": len(te), "results": {"float": {**score(net), **weight_memory(net)}}}
    for b in sc.timit_bits:
        m, ok = _inq(net, train, qcfg, b, job_dir / f"inq{b}", resume, progress)
        res["results"][f"inq{b}"] = {**score(m), "on_codebook": ok, **weight_memory(m)}
    res["mean_ref_len"] = sum(map(len, refs)) / len(refs)
    return res


def ensembles(out: Path, sc: Scale, texts: list[str]) -> dict[str, dict[int, dict]]:
    """WER of the first-N-members ensemble (N = 1..members), float and INQ-``ensemble_bits`` members."""
    res: dict[str, dict[int, dict]] = {}
    for kind in ("float", f"inq{sc.ensemble_bits}"):
        probs = [
            torch.load(out / "jobs" / f"member{k}" / f"probs_{kind}.pt", weights_only=True) for k in range(sc.members)
        ]
        res[kind] = {}
        for n in range(1, sc.members + 1):
            avg = [average_probs([p[i] for p in probs[:n]]) for i in range(len(texts))]
            res[kind][n] = {"wer": digits_wer(avg, texts)}
    return res


def study_config(scale: str) -> dict:
    sc = SCALES[scale]
    fcfg, qcfg = _cfgs(sc, 0)
    return {
        "study": "speech",
        "scale": scale,
        "memory": "b bits per INQ weight (all Linear weights incl. Wf, Wb), 32 bits per float parameter (biases)",
        "data": {
            "name": "fsdd connected digits",
            "root": "<LOWBIT_DATA>/fsdd/recordings",
            "train_speakers": list(fsdd.TRAIN_SPEAKERS),
            "test_speakers": list(fsdd.TEST_SPEAKERS),
            "train_utterances": sc.n_train,
            "test_utterances": sc.n_test,
            "digits_per_utterance": [1, 7],
            "labels": "word tokens, blank=0, zero..nine=1..10",
            "features": sc.features().to_dict(),
        },
        "scale_params": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(sc).items()},
        "float_train": fcfg.to_dict(),
        "inq_retrain": qcfg.to_dict(),
        "inq": {"portions": [0.5, 0.75, 0.875, 1.0], "strategy": "magnitude", "retrain_last": False},
        "ctc": "nn.CTCLoss(blank=0, zero_infinity=True), reduction='mean' (per-utterance loss / target length)",
        "decoding": "greedy (argmax, collapse repeats, drop blanks); ensembles average frame posteriors first",
        "timit": {"test_speakers": list(TIMIT_TEST_SPEAKERS), "epochs": sc.timit_epochs, "bits": list(sc.timit_bits)},
    }


def _ms(vals: list[float]) -> str:
    return mean_std(vals)


def build_report(out: Path, cfg: dict, members: list[dict], smalls: list[dict], ens: dict, tim: dict | None) -> Path:
    sc = SCALES[cfg["scale"]]
    out = Path(out)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    sweep = [m for m in members if m["seed"] < sc.sweep_seeds]
    fbits = sweep[0]["results"]["float"]["bits"]

    def col(rows, key):
        return [r["results"][key]["wer"] for r in rows if key in r["results"]]

    n = len(sweep)
    t1 = Table(
        f"Bit sweep: Deep Speech WER (%) on FSDD connected digits, INQ from the float weights ({n} seeds)",
        ["weights", "WER mean ± std", "runs", "weights KiB as stored", "memory reduction", "paper (TIMIT)"],
        [["float (32)", _ms(col(sweep, "float")), n, f"{fbits / 8192:.1f}", "1.0x", PAPER["float"]]]
        + [
            [
                f"INQ {b} bits",
                _ms(col(sweep, f"inq{b}")),
                len(col(sweep, f"inq{b}")),
                f"{sweep[0]['results'][f'inq{b}']['bits'] / 8192:.1f}",
                f"{fbits / sweep[0]['results'][f'inq{b}']['bits']:.1f}x",
                PAPER["bits"].get(b),
            ]
            for b in sc.bits
        ],
        "Lower is better. Memory: b bits per INQ weight, 32 per bias. The paper's column is its Table 8 (TIMIT).",
    )
    eb = sc.ensemble_bits
    t2 = Table(
        f"Ensembles: WER (%) of N parallel Deep Speech models (frame posteriors averaged), float and INQ {eb}-bit",
        ["N", "float WER", f"INQ{eb} WER", "float memory KiB", f"INQ{eb} memory KiB", "paper float", f"paper {eb}-bit"],
        [
            [
                k,
                ens["float"][k]["wer"],
                ens[f"inq{eb}"][k]["wer"],
                f"{k * fbits / 8192:.1f}",
                f"{k * members[0]['results'][f'inq{eb}']['bits'] / 8192:.1f}",
                PAPER["ens_float"].get(k),
                PAPER["ens_q9"].get(k) if eb == 9 else None,
            ]
            for k in sorted(ens["float"])
        ],
        "One run per N (the first N members, seeds 0..N-1). Paper columns: its Table 9.",
    )
    srow = [
        [
            "float",
            _ms(col(smalls, "float")),
            f"{smalls[0]['results']['float']['bits'] / 8192:.1f}",
            PAPER["small"]["float"],
        ]
    ]
    srow += [
        [
            f"INQ {b} bits",
            _ms(col(smalls, f"inq{b}")),
            f"{smalls[0]['results'][f'inq{b}']['bits'] / 8192:.1f}",
            PAPER["small"].get(b),
        ]
        for b in sc.small_bits
    ]
    t3 = Table(
        f"Small Deep Speech (no FC2/FC3): WER (%) over {len(smalls)} seeds",
        ["weights", "WER mean ± std", "weights KiB as stored", "paper (TIMIT)"],
        srow,
        f"The full model has {sweep[0]['results']['float']['params']:,} parameters, the small one "
        f"{smalls[0]['results']['float']['params']:,}.",
    )
    tables = [t1, t2, t3]
    if tim:
        tables.append(
            Table(
                f"TIMIT sample ({tim['train_utts']} train / {tim['test_utts']} test utterances, "
                f"2 held-out dr8 speakers): "
                "PER (%) on 39 folded phones",
                ["weights", "PER", "mean decoded length (phones)"],
                [[k, v["per"], v["mean_hyp_len"]] for k, v in tim["results"].items()],
                f"Mean reference length {tim['mean_ref_len']:.1f} phones. 140 training sentences are far too few for "
                "Deep Speech: read this as a check that the pipeline runs on real TIMIT files, not as a PER result.",
            )
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(sc.bits)
    ys = [sum(col(sweep, f"inq{b}")) / n for b in xs]
    fl = sum(col(sweep, "float")) / n
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(xs, ys, "o-", label="INQ")
    ax.axhline(fl, color="k", ls="--", label="float")
    ax.set_xlabel("weight bits")
    ax.set_ylabel("WER (%)")
    ax.legend()
    fig.tight_layout()
    atomic_savefig(fig, figs / "wer_vs_bits.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ns = sorted(ens["float"])
    ax.plot(ns, [ens["float"][k]["wer"] for k in ns], "o-", label="float members")
    ax.plot(ns, [ens[f"inq{eb}"][k]["wer"] for k in ns], "s-", label=f"INQ {eb}-bit members")
    ax.set_xlabel("ensemble size N")
    ax.set_ylabel("WER (%)")
    ax.legend()
    fig.tight_layout()
    atomic_savefig(fig, figs / "wer_vs_members.png", dpi=120)
    plt.close(fig)
    desc = f"FSDD connected digits (test speaker {', '.join(fsdd.TEST_SPEAKERS)}, {sc.n_test} utterances)"
    report = Report(
        "Speech study: Deep Speech + INQ on FSDD connected digits",
        [
            f"Scale {cfg['scale']}: {sc.n_train} training utterances (speakers {', '.join(fsdd.TRAIN_SPEAKERS)}), "
            f"{sc.n_test} test utterances, hidden {sc.hidden}, {sc.float_epochs} float epochs, {sc.inq_epochs} "
            "epoch(s) per INQ stage. WER = 100 Σ Lev / Σ |ref| with greedy CTC decoding.",
        ],
        tables,
        [
            Figure(
                "figures/wer_vs_bits.png",
                f"WER vs weight bits: {desc}; Deep Speech (hidden {sc.hidden}); INQ "
                f"(magnitude, portions 0.5/0.75/0.875/1) from float; mean of {n} seeds (0..{n - 1}); dashed: float.",
            ),
            Figure(
                "figures/wer_vs_members.png",
                f"WER vs ensemble size N: {desc}; Deep Speech; float and INQ {eb}-bit "
                f"members, seeds 0..N-1, posteriors averaged; one run per N.",
            ),
        ],
        tomlio.dumps(cfg),
    )
    md, _ = report.write(out)
    return md


def _collect(out: Path, sc: Scale):
    members = [load_result(out / "jobs" / f"member{k}") for k in range(sc.members)]
    smalls = [load_result(out / "jobs" / f"small{k}") for k in range(sc.small_seeds)]
    tim = load_result(out / "jobs" / "timit") if sc.timit_epochs else None
    return members, smalls, tim


def rebuild_report(out: Path) -> Path:
    out = Path(out)
    cfg = tomlio.load(out / "config.toml")
    if cfg.get("study") != "speech":
        raise ValueError(f"{out} is not a speech run (config.toml study = {cfg.get('study')!r})")
    sc = SCALES[cfg["scale"]]
    members, smalls, tim = _collect(out, sc)
    if any(r is None for r in members + smalls):
        raise ValueError(f"{out}: some jobs have no results yet; finish the run with --resume first")
    _, texts = _load(out, "fsdd_test")
    return build_report(out, cfg, members, smalls, ensembles(out, sc, texts), tim)


@register_study(
    "speech",
    "Deep Speech + INQ on FSDD connected digits (bit sweep, ensembles, small model) + TIMIT sample PER",
    scales=tuple(SCALES),
    report=rebuild_report,
)
def run(out: Path, scale: str = "default", resume: bool = False, workers: int = 2, progress: bool = True) -> Path:
    sc = SCALES[scale]
    out = Path(out)
    cfg = study_config(scale)
    start_run_folder(out, cfg, resume)
    prepare_data(out, sc)
    jobs = []
    if sc.timit_epochs:
        jobs.append(Job("timit", "lowbit.experiments.speech:timit_job", {"scale": scale}))
    # the sweep members carry the most INQ runs: first, so the workers finish together
    jobs += [
        Job(
            f"member{k}",
            "lowbit.experiments.speech:member_job",
            {"out": str(out), "scale": scale, "seed": k, "small": False},
        )
        for k in range(sc.members)
    ]
    jobs += [
        Job(
            f"small{k}",
            "lowbit.experiments.speech:member_job",
            {"out": str(out), "scale": scale, "seed": k, "small": True},
        )
        for k in range(sc.small_seeds)
    ]
    results = run_jobs(jobs, out, workers=workers, resume=resume, progress=progress, desc="speech jobs")
    members = [results[f"member{k}"] for k in range(sc.members)]
    smalls = [results[f"small{k}"] for k in range(sc.small_seeds)]
    _, texts = _load(out, "fsdd_test")
    ens = ensembles(out, sc, texts)
    rows = [json.dumps({"job": j, **r}) for j, r in results.items()]
    rows.append(json.dumps({"ensembles": {k: {str(n): v for n, v in d.items()} for k, d in ens.items()}}))
    atomic_write_text(out / "metrics.jsonl", "\n".join(rows) + "\n")
    return build_report(out, cfg, members, smalls, ens, results.get("timit"))
