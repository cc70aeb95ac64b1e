"""The Ray backend on a real two-node Ray cluster on this machine (ray.cluster_utils.Cluster, bound to 127.0.0.1).

The head node runs the GCS and this test's driver and no job (0 CPUs); the second node (2 CPUs) runs every job and
has a temporary directory of its own, so nothing a job writes reaches the driver's run folder except through Ray's
object store. Every sweep is compared with the same spec run by the local backend in this process: the same store
rows (every metric, bitwise) and the same model files.

One test runs the four scenarios on one cluster, in turn: pytest-xdist would spread separate tests over its
processes and start a cluster in each (its ``xdist_group`` does not group tests under pytest 9.2), and a cluster
costs more than the scenarios. Each scenario prints its wall time (``pytest -s``)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from lowbit.engine.plan import plan
from lowbit.engine.run import sweep
from lowbit.engine.spec import parse_spec
from lowbit.engine.store import Store
from lowbit.serialize import load_model

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (the cluster extra)"),
]

# every port and address of the test cluster on the loopback interface; no usage report sent
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head (0 CPUs: the GCS and the driver) and a second node (2 CPUs, its own TMPDIR); stopped at the end."""
    saved = {k: os.environ.get(k) for k in [*RAY_ENV, "RAY_TMPDIR"]}
    os.environ.update(RAY_ENV)  # read by the Ray processes started below (and by ray's constants, when imported)
    import ray
    import ray._private.ray_constants as rc
    from ray.cluster_utils import Cluster

    was_cluster, rc.ENABLE_RAY_CLUSTER = rc.ENABLE_RAY_CLUSTER, False  # in case ray was imported before
    far_tmp = tmp_path_factory.mktemp("far-node-tmp")
    # the cluster's sessions and sockets: a short path of its own (a socket's path has at most 107 bytes), removed
    ray_tmp = tempfile.mkdtemp(prefix="lowbit-ray-", dir="/tmp")
    # Ray writes the cluster's address to $RAY_TMPDIR/ray/ray_current_cluster (default /tmp/ray, which a fresh
    # machine does not have): keep that file in the test's own folder too
    os.makedirs(os.path.join(ray_tmp, "ray"), exist_ok=True)
    os.environ["RAY_TMPDIR"] = ray_tmp
    c = None
    try:
        where = {"node_ip_address": "127.0.0.1", "temp_dir": ray_tmp}
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **where})
        far = c.add_node(num_cpus=2, env_vars={"TMPDIR": str(far_tmp)}, **where)
        ray.init(address=c.address, _node_ip_address="127.0.0.1", logging_level="WARNING")
        yield {"address": c.address, "far_node": far.node_id, "far_tmp": far_tmp}
    finally:
        ray.shutdown()
        if c is not None:
            c.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
        rc.ENABLE_RAY_CLUSTER = was_cluster
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _spec(epochs: int = 3):
    from support.specs import SPIRALS_TINY

    return parse_spec(__import__("tomllib").loads(SPIRALS_TINY.replace("epochs = 3", f"epochs = {epochs}")))


def _rows(out: Path) -> list[tuple]:
    """Every stored metric (wall times aside, which no two runs share)."""
    with Store(out, create=False) as s:
        rows = s.rows()
    return sorted((r.job_id, r.metric, r.value, repr(r.axes), r.model_path) for r in rows)


def _models(out: Path) -> dict[str, tuple]:
    """Each job's saved model: its metadata and its tensors' bytes (the header's key order is the writer's)."""
    from safetensors import safe_open

    models = {}
    for path in sorted((out / "jobs").glob("*/model.safetensors")):
        with safe_open(str(path), "pt") as f:
            tensors = {k: f.get_tensor(k).numpy().tobytes() for k in f.keys()}
            models[path.parent.name] = (f.metadata(), tensors)
    return models


_local: dict[int, Path] = {}


def _local_run(epochs: int, tmp_path_factory) -> Path:
    """The spec at ``epochs`` run by the local backend in this process (once per module)."""
    if epochs not in _local:
        out = tmp_path_factory.mktemp(f"local-{epochs}") / "run"
        sweep(_spec(epochs), out, workers=1, progress=False)
        _local[epochs] = out
    return _local[epochs]


class _Placed:
    """The nodes the Ray backend's jobs ran on (read from the backend as the sweep closes it)."""

    def __init__(self, monkeypatch):
        from lowbit.engine.backends.ray import RayBackend

        self.nodes: dict[str, str] = {}
        close = RayBackend.close

        def spy(be, wait=True):
            self.nodes.update(be.placed)
            close(be, wait)

        monkeypatch.setattr(RayBackend, "close", spy)


def tiny_spec_on_ray_stores_the_rows_and_models_of_the_local_backend(cluster, tmp_path, tmp_path_factory, monkeypatch):
    local = _local_run(3, tmp_path_factory)
    sweep(_spec(3), tmp_path / "ray", backend="ray", backend_options={"address": cluster["address"]}, progress=False)
    assert _rows(tmp_path / "ray") == _rows(local) and len(_rows(local)) > 10
    assert _models(tmp_path / "ray") == _models(local) and len(_models(local)) == 3  # bitwise the same weights
    assert (tmp_path / "ray" / "report.md").is_file()


def a_job_killed_mid_training_is_retried_and_continues_from_shared_storage(cluster, tmp_path, tmp_path_factory, _mp):
    """SIGKILL of the Ray worker running the float job once it has finished an epoch: Ray runs the task again; with
    --storage the new attempt continues from the checkpoint the killed one left (its first epoch's line, with its
    measured seconds, is the one written before the kill), and the sweep ends with the local backend's rows."""
    epochs = 150  # ~10 ms each here: long enough for the killer to find it mid-training
    local = _local_run(epochs, tmp_path_factory)
    spec = _spec(epochs)
    float_id = next(j.id for j in plan(spec) if j.kind == "float")
    storage = tmp_path / "shared"
    metrics = storage / "jobs" / float_id / "train" / "metrics.jsonl"
    seen: dict = {}

    def kill_when_training():
        t0 = time.time()
        while time.time() - t0 < 120 and "pid" not in seen:
            lines = metrics.read_text().splitlines() if metrics.is_file() else []
            pids = _task_pids(f"lowbit-{float_id}")
            if lines and pids:
                seen["first"], seen["epochs"], seen["pid"] = lines[0], len(lines), pids[0]
                os.kill(pids[0], 9)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_when_training, daemon=True)
    killer.start()
    options = {"address": cluster["address"], "storage": str(storage)}
    sweep(spec, tmp_path / "ray", backend="ray", backend_options=options, progress=False)
    killer.join(5)
    assert "pid" in seen, "the float job finished before it could be killed"
    assert 1 <= seen["epochs"] < epochs
    assert _rows(tmp_path / "ray") == _rows(local)
    assert _models(tmp_path / "ray") == _models(local)
    done = (tmp_path / "ray" / "jobs" / float_id / "train" / "metrics.jsonl").read_text().splitlines()
    first = json.loads(seen["first"])  # its measured seconds: no other attempt at that epoch writes the same
    assert len(done) == epochs and json.loads(done[0]) == first  # continued: the killed attempt's epoch kept


def _task_pids(name: str) -> list[int]:
    """Processes whose title is Ray's for a worker running task ``name`` (``ray::<name>``)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                title = (p / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if re.match(rf"ray::{re.escape(name)}\b", title):
                out.append(int(p.name))
    return out


def a_node_without_the_run_folder_sends_every_file_back(cluster, tmp_path, tmp_path_factory, monkeypatch):
    """No --storage: every job runs on the second node in a folder of its temporary directory (its own TMPDIR),
    children get their parent's model through the object store, and the driver writes every file."""
    placed = _Placed(monkeypatch)
    local = _local_run(3, tmp_path_factory)
    out = tmp_path / "ray"
    sweep(_spec(3), out, backend="ray", backend_options={"address": cluster["address"]}, progress=False)
    jobs = plan(_spec(3))
    assert set(placed.nodes) == {j.id for j in jobs} and set(placed.nodes.values()) == {cluster["far_node"]}
    assert _rows(out) == _rows(local)
    for j in jobs:
        folder = out / "jobs" / j.id
        model, _ = load_model(folder / "model.safetensors")
        assert sum(p.numel() for p in model.parameters()) > 0
        assert (folder / "probs.safetensors").is_file() and (folder / "train").is_dir()
    assert not list(cluster["far_tmp"].glob("lowbit-job-*"))  # the node's job folders are removed


def a_job_that_raises_comes_back_as_job_failed_with_its_id(cluster, tmp_path, tmp_path_factory, monkeypatch):
    from lowbit.engine.backends import JobFailed
    from lowbit.engine.backends.ray import RayBackend
    from lowbit.engine.steps import run_job

    be = RayBackend(1, address=cluster["address"])
    try:
        be.submit("bad", run_job, {"config": {"recipe": {}}, "job_dir": str(tmp_path / "bad"), "parent_dirs": []})
        with pytest.raises(JobFailed) as e:
            be.next_result()
        assert (e.value.key, e.value.error_type) == ("bad", "KeyError") and "Traceback" in e.value.detail
        assert be.pending == 0
    finally:
        be.close()


SCENARIOS = [
    tiny_spec_on_ray_stores_the_rows_and_models_of_the_local_backend,
    a_job_killed_mid_training_is_retried_and_continues_from_shared_storage,
    a_node_without_the_run_folder_sends_every_file_back,
    a_job_that_raises_comes_back_as_job_failed_with_its_id,
]


def test_sweeps_on_a_two_node_ray_cluster(cluster, tmp_path, tmp_path_factory, monkeypatch):
    for scenario in SCENARIOS:
        folder = tmp_path / scenario.__name__[:40]
        folder.mkdir()
        t0 = time.perf_counter()
        scenario(cluster, folder, tmp_path_factory, monkeypatch)
        print(f"{scenario.__name__}: {time.perf_counter() - t0:.1f} s")
