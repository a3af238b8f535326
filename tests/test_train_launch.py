"""tools/train.py under paddle.distributed.launch on CPU ranks (gloo): classes
placed by cost, ranks meeting through Paddle's collectives, several launchers
forming one job without a shared folder, data-parallel replicas."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import yaml

from conftest import ROOT
from conftest import load_weights  # noqa: E402
from test_train import ckpt_step, read_scalars, tiny_config, train_data, write_config  # noqa: F401


def launch(tmp_path, cfg_path, nproc=3, extra=()):
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
           "--log_dir", str(tmp_path / "launch_logs"), str(ROOT / "tools/train.py"),
           "-c", str(cfg_path), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def worker_log(tmp_path, rank) -> str:
    return (tmp_path / "launch_logs" / f"workerlog.{rank}").read_text()


def test_three_ranks_three_classes(tmp_path, train_data):  # noqa: F811
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", tiny_config(train_data, out))
    r = launch(tmp_path, cfg)
    logs = "\n".join(worker_log(tmp_path, i) for i in range(3))
    assert r.returncode == 0, r.stdout[-3000:] + logs[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 3
    # one class per rank, the costliest (class 2, spec 2-2) on rank 0
    assert summary["placement"] == {"0": [1], "1": [2], "2": [0]}
    for c, (rank,) in summary["placement"].items():
        assert re.search(rf"\[rank {rank}/3\] local rank {rank}, pid \d+, device cpu, classes \[{c}\]",
                         worker_log(tmp_path, rank))
        assert ckpt_step(out / f"class{c}/latest.ckpt.safetensors") == 5
        steps = [s for s, _ in read_scalars(out / "vdl" / f"class{c}", "loss/g_total")]
        assert steps and steps == sorted(steps)
    assert not (out / "status").exists()
    assert (out / "bundle/manifest.yaml").exists()
    assert all(c["status"] == "done" and c["phases"]["pretrain"]["it_per_s"] > 0
               for c in summary["classes"])
    busy = [summary["ranks"][str(r)]["busy_seconds"] for r in range(3)]
    assert all(b > 0 for b in busy) and summary["busy_seconds_max"] == max(busy)
    assert summary["busy_seconds_ideal"] == round(sum(busy) / 3, 3)
    assert "slowest" in worker_log(tmp_path, 0) and "ideal" in worker_log(tmp_path, 0)


def test_one_rank_failing_fails_the_launch_and_spares_the_others(tmp_path, train_data):  # noqa: F811
    out = tmp_path / "out"
    cfg = tiny_config(train_data, out, val={"dir": None})
    # class 0 (on rank 1) passes the checks before training (its manifest lists an
    # image), then fails
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "class0.tsv").write_text("path\ttvat\nbroken.png\t1.0\n")
    cfg["classes"][0]["sources"] = [str(tmp_path / "class0.tsv")]
    r = launch(tmp_path, write_config(tmp_path / "c.yaml", cfg))
    assert r.returncode != 0
    assert "no usable training images" in worker_log(tmp_path, 1)
    # rank 0 names the class and the reason, received over the collectives
    log0 = worker_log(tmp_path, 0)
    assert re.search(r"class 0 \(1-2\) FAILED: .*no usable training images", log0)
    assert "bundle NOT assembled" in log0
    failed = json.loads((out / "class0/failed.json").read_text())
    assert "no usable training images" in failed["error"]
    for i in (1, 2):  # the other classes finished, their checkpoints load
        assert ckpt_step(out / f"class{i}/latest.ckpt.safetensors") == 5
        assert (out / f"class{i}/g_final.safetensors").exists()
    assert not (out / "bundle").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert [c["status"] for c in summary["classes"]] == ["failed", "done", "done"]


# ---------------------------------------------------------------- several nodes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_copy(tmp_path, name: str, train_data, cfg: dict):  # noqa: F811
    """A separate checkout of the project with its own data and output folder."""
    node = tmp_path / name
    shutil.copytree(ROOT, node, ignore=shutil.ignore_patterns(
        ".git", "pretrained", "output", "notebooks", "__pycache__", "*.egg-info", ".pytest_cache"))
    shutil.copytree(train_data, node / "data")
    write_config(node / "c.yaml", cfg)
    return node


def _start_node(node, port, nproc: int, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(node), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "paddle.distributed.launch", "--master", f"127.0.0.1:{port}",
         "--nnodes", "2", "--nproc_per_node", str(nproc), "--log_dir", "logs",
         "tools/train.py", "-c", "c.yaml"],
        cwd=node, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _rank_logs(nodes) -> dict:
    """{global rank: (node folder, log text)} from the worker logs of every node."""
    out = {}
    for node in nodes:
        for f in (node / "logs").glob("workerlog.*"):
            m = re.search(r"\[rank (\d+)/\d+\] local rank", f.read_text())
            if m:
                out[int(m.group(1))] = (node, f.read_text())
    return out


def _relative_config(**kw) -> dict:
    cfg = tiny_config(ROOT, ROOT, val={"dir": None}, **kw)  # paths replaced below
    cfg["output"], cfg["data"]["split"] = "out", "data/split"
    return cfg


def test_two_nodes_two_processes_each_without_a_shared_folder(tmp_path, train_data):  # noqa: F811
    """2 launchers x 2 processes, each from its own copy: global rank != local rank;
    rank 0's folder ends up with the whole bundle, received over the collectives."""
    cfg = _relative_config(pretrain=2, adversarial=0, classes=[
        {"spec": "1-2"}, {"spec": "2-2"}, {"spec": "1-2"}])
    nodes = [_node_copy(tmp_path, f"node{n}", train_data, cfg) for n in range(2)]
    port = _free_port()
    procs = [_start_node(node, port, 2) for node in nodes]
    codes = [p.wait(timeout=300) for p in procs]
    ranks = _rank_logs(nodes)
    assert codes == [0, 0], "\n".join(t[-2000:] for _, t in ranks.values())
    assert sorted(ranks) == [0, 1, 2, 3]
    for r, (node, text) in ranks.items():  # ranks 2, 3 are local ranks 0, 1 of their node
        assert f"[rank {r}/4] local rank {r % 2}," in text
    home = ranks[0][0]
    other = nodes[1] if home == nodes[0] else nodes[0]
    summary = json.loads((home / "out/summary.json").read_text())
    placement = {int(c): v for c, v in summary["placement"].items()}
    # the 2-2 class is the costliest: rank 0, and the spare rank 3 (other node) as its replica
    assert placement == {1: [0, 3], 0: [1], 2: [2]}
    from paddle_mmsr.core.manifest import load_bundle
    b = load_bundle(home / "out/bundle")
    assert [c.spec for c in b.classes] == ["1-2", "2-2", "1-2"]
    import paddle
    for c, (leader, *_) in placement.items():  # bundle weights == the leader's own g_final
        leader_node = ranks[leader][0]
        got = load_weights(home / f"out/bundle/class{c}.safetensors")
        ref = load_weights(leader_node / f"out/class{c}/g_final.safetensors")
        assert all(np.array_equal(got[k].numpy(), ref[k].numpy()) for k in ref)
    assert not (other / "out/bundle").exists() and not (other / "out/summary.json").exists()
    assert not (home / "out/status").exists()
    assert set(summary["ranks"]) == {"0", "1", "2", "3"}


def test_a_killed_rank_fails_the_launch_and_is_named(tmp_path, train_data):  # noqa: F811
    cfg = _relative_config(pretrain=400, adversarial=0, checkpoint={"every": 20},
                           log={"every": 50})
    nodes = [_node_copy(tmp_path, f"node{n}", train_data, cfg) for n in range(2)]
    port = _free_port()
    procs = [_start_node(node, port, 1, {"PADDLE_MMSR_PEER_TIMEOUT": "6"}) for node in nodes]
    try:
        deadline, victim = time.time() + 200, None
        while time.time() < deadline and victim is None:  # rank 1 trains classes 0 and 1
            ranks = _rank_logs(nodes)
            if 1 in ranks and (ranks[1][0] / "out/class0/latest.ckpt.safetensors").exists():
                victim = int(re.search(r"pid (\d+)", ranks[1][1]).group(1))
            time.sleep(0.3)
        assert victim, "rank 1 never started training"
        os.kill(victim, signal.SIGKILL)
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    ranks = _rank_logs(nodes)
    home, log0 = ranks[0]
    other = ranks[1][0]
    assert all(c != 0 for c in codes), codes
    assert re.search(r"class 0 \(1-2\) LOST: rank 1 lost: no heartbeat", log0), log0[-3000:]
    assert "bundle NOT assembled" in log0
    summary = json.loads((home / "out/summary.json").read_text())
    assert [c["status"] for c in summary["classes"]] == ["lost", "lost", "done"]
    assert summary["bundle"] is None and not (home / "out/bundle").exists()
    assert ckpt_step(home / "out/class2/latest.ckpt.safetensors") == 400  # rank 0's class, intact
    step = ckpt_step(other / "out/class0/latest.ckpt.safetensors")  # the killed class: last good one
    assert 20 <= step < 400 and step % 20 == 0


# ---------------------------------------------------------------- data parallel
def test_extra_rank_is_a_data_parallel_replica(tmp_path, train_data):  # noqa: F811
    """One class on two CPU ranks: each takes half of every batch and the weighted
    gradients are summed over the class's group, so both ranks end with the weights
    one rank gets on the whole batches."""
    import paddle
    out = tmp_path / "out"
    one_class = dict(pretrain=4, adversarial=0, val={"dir": None}, classes=[{"spec": "1-2"}],
                     data={"split": None, "sources": [str(train_data / "split/class0.tsv")]})
    r = launch(tmp_path, write_config(tmp_path / "c.yaml", tiny_config(train_data, out,
                                                                         **one_class)), nproc=2)
    assert r.returncode == 0, worker_log(tmp_path, 0)[-3000:] + worker_log(tmp_path, 1)[-3000:]
    assert "classes [0] 0 (1-2, replica 1/2)" in worker_log(tmp_path, 1)
    lead = load_weights(out / "class0/g_final.safetensors")
    rep = load_weights(out / "class0/replica1/g_final.safetensors")
    from test_train import _train_in_process
    _train_in_process(tiny_config(train_data, tmp_path / "solo", **one_class))
    solo = load_weights(tmp_path / "solo/class0/g_final.safetensors")
    init = _train_in_process(tiny_config(train_data, tmp_path / "zero", **{
        **one_class, "pretrain": 1}))  # (to show the weights moved)
    first = load_weights(tmp_path / "zero/class0/g_final.safetensors")
    for k in lead:
        np.testing.assert_array_equal(lead[k].numpy(), rep[k].numpy())
        np.testing.assert_allclose(lead[k].numpy(), solo[k].numpy(), rtol=1e-4, atol=1e-6)
    assert init and any(not np.allclose(lead[k].numpy(), first[k].numpy()) for k in lead)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["placement"] == {"0": [0, 1]} and summary["bundle_assembled"]
    assert yaml.safe_load((out / "bundle/manifest.yaml").read_text())["classes"][0]["spec"] == "1-2"
