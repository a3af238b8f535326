"""tools/train.py under paddle.distributed.launch: one class per CPU rank."""
import json
import subprocess
import sys

from conftest import ROOT
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
    for i in range(3):  # rank i trained class i
        assert f"[rank {i}/3] device cpu, classes [{i}]" in worker_log(tmp_path, i)
        assert ckpt_step(out / f"class{i}/latest.pdckpt") == 5
        steps = [s for s, _ in read_scalars(out / "vdl" / f"class{i}", "loss/g_total")]
        assert steps and steps == sorted(steps)
    assert (out / "bundle/manifest.yaml").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 3
    assert summary["placement"] == {"0": 0, "1": 1, "2": 2}
    assert all(c["status"] == "done" and c["phases"]["pretrain"]["it_per_s"] > 0
               for c in summary["classes"])


def test_one_rank_failing_fails_the_launch_and_spares_the_others(tmp_path, train_data):  # noqa: F811
    out = tmp_path / "out"
    cfg = tiny_config(train_data, out, val={"dir": None})
    # class 1 passes the checks before training (its manifest lists an image), then fails
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "class1.tsv").write_text("path\ttvat\nbroken.png\t1.0\n")
    cfg["classes"][1]["sources"] = [str(tmp_path / "class1.tsv")]
    r = launch(tmp_path, write_config(tmp_path / "c.yaml", cfg))
    assert r.returncode != 0
    assert "no usable training images" in worker_log(tmp_path, 1)
    failed = json.loads((out / "class1/failed.json").read_text())
    assert "no usable training images" in failed["error"]
    for i in (0, 2):  # the other classes finished, their checkpoints load
        assert ckpt_step(out / f"class{i}/latest.pdckpt") == 5
        assert (out / f"class{i}/g_final.pdparams").exists()
    assert not (out / "bundle").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert [c["status"] for c in summary["classes"]] == ["done", "failed", "done"]


def test_two_nodes_on_one_machine(tmp_path, train_data):  # noqa: F811
    """Two launchers with --master/--nnodes 2 form one 2-rank job for 3 classes:
    rank 0 trains classes 0 and 2 in turn, rank 1 class 1."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", tiny_config(train_data, out, pretrain=2,
                                                        adversarial=0, val={"dir": None}))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "paddle.distributed.launch", "--master", f"127.0.0.1:{port}",
         "--nnodes", "2", "--nproc_per_node", "1", "--log_dir", str(tmp_path / f"node{n}"),
         str(ROOT / "tools/train.py"), "-c", str(cfg)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in range(2)]
    codes = [p.wait(timeout=300) for p in procs]
    logs = "\n".join(f.read_text() for f in tmp_path.glob("node*/workerlog.*"))
    assert codes == [0, 0], logs[-3000:]
    assert "[rank 0/2] device cpu, classes [0, 2]" in logs
    assert "[rank 1/2] device cpu, classes [1]" in logs
    assert (out / "bundle/manifest.yaml").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["placement"] == {"0": 0, "1": 1, "2": 0}
