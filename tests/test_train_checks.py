"""Training catches mistakes early: empty TVAT classes, missing paths, bad numbers,
a damaged checkpoint, and a summary that keeps a valid bundle."""
import json

import numpy as np
import pytest

from test_train import _train_in_process, tiny_config, train_data  # noqa: F401  (fixture)


def _cfg(cfg_dict):
    from paddle_mmsr.config import parse_config
    return parse_config(cfg_dict)


@pytest.fixture(scope="module")
def empty_class_split(tmp_path_factory, train_data):  # noqa: F811
    """The same photos split with bounds that leave class 2 empty."""
    from paddle_mmsr.data.split import split_folder
    out = tmp_path_factory.mktemp("split_empty")
    info = split_folder(train_data / "hr", out, scale=4, sub_size=64, step=64,
                        bounds=[1.0, 1e6])
    return out, info


def test_split_warns_about_an_empty_class(empty_class_split, train_data, tmp_path,  # noqa: F811
                                          capsys):
    _, info = empty_class_split
    assert [c["count"] for c in info["classes"]][2] == 0
    assert len(info["warnings"]) == 1
    assert "class 2 (TVAT [1e+06, inf)) has no sub-images" in info["warnings"][0]
    assert "--calibrate 3" in info["warnings"][0]
    from paddle_mmsr.cli import split
    assert split.main([str(train_data / "hr"), str(tmp_path / "s"), "--sub-size", "64",
                       "--step", "64", "--bounds", "1,1000000"]) == 0
    err = capsys.readouterr().err
    assert "warning: class 2 (TVAT [1e+06, inf)) has no sub-images" in err
    assert "--calibrate 3" in err


def test_training_refuses_an_empty_class_before_any_class_trains(empty_class_split, train_data,  # noqa: F811
                                                                 tmp_path):
    from paddle_mmsr.train.placement import RankInfo
    from paddle_mmsr.train.run import run_training
    split, _ = empty_class_split
    out = tmp_path / "out"
    cfg = _cfg(tiny_config(train_data, out, pretrain=2, adversarial=0,
                           data={"split": str(split)}, val={"dir": None}))
    with pytest.raises(ValueError, match=r"class 2 \(TVAT \[1e\+06, inf\) of the split .*"
                                         r"has no training images.*--calibrate 3"):
        run_training(cfg, info=RankInfo(rank=0, world_size=1, run_id="t"))
    assert not (out / "class0").exists() and not (out / "class1").exists()


def test_check_verifies_the_paths_it_names(train_data, tmp_path, capsys):  # noqa: F811
    import yaml
    from paddle_mmsr.cli import train

    def check(**sections):
        p = tmp_path / "c.yaml"
        p.write_text(yaml.safe_dump(tiny_config(train_data, tmp_path / "out", **sections)))
        code = train.main(["-c", str(p), "--check"])
        return code, capsys.readouterr()

    code, res = check()
    assert code == 0 and "OK (3 classes, training images per class [" in res.out, res.err
    code, res = check(data={"split": str(tmp_path / "no_split")})
    assert code == 2 and "no_split: no split.yaml" in res.err
    code, res = check(val={"dir": str(tmp_path / "no_val")})
    assert code == 2 and "val.dir:" in res.err and "no HR/ folder" in res.err
    code, res = check(classes=[{"spec": "1-2"}, {"spec": "1-2", "sources": [str(tmp_path / "x")]},
                               {"spec": "2-2"}])
    assert code == 2 and "class 1:" in res.err and "no such folder or manifest" in res.err
    code, res = check(loss={"vgg_weights": str(tmp_path / "vgg.safetensors")})
    assert code == 2 and "VGG19 weights file" in res.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("override, message", [
    ({"optim": {"pretrain": {"lr": float("nan")}}}, "optim.pretrain.lr: expected a finite number"),
    ({"optim": {"generator": {"lr": "inf"}}}, "optim.generator.lr: expected a finite number"),
    ({"optim": {"discriminator": {"lr": 0}}}, "optim.discriminator.lr must be > 0, got 0.0"),
    ({"optim": {"pretrain": {"lr": -1e-4}}}, "optim.pretrain.lr must be > 0, got -0.0001"),
    ({"model": {"generator": {"channels": 0}}}, "generator channels must be >= 1, got 0"),
    ({"classes": [{"spec": "2-2", "generator": {"channels": -8}}]},
     "classes.0: generator channels must be >= 1, got -8"),
    ({"model": {"discriminator_channels": 0}}, "model.discriminator_channels must be >= 1"),
    ({"loss": {"adv_weight": float("nan")}}, "loss.adv_weight: expected a finite number"),
], ids=["lr-nan", "lr-inf", "lr-0", "lr-negative", "channels-0", "class-channels",
        "d-channels", "weight-nan"])
def test_config_rejects_bad_numbers(override, message):
    from paddle_mmsr.config import ConfigError, parse_config
    raw = {"data": {"sources": ["x"]}, **override}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_config(raw)


def test_truncated_latest_checkpoint_says_what_to_do(train_data, tmp_path):  # noqa: F811
    from paddle_mmsr.train.checkpoint import CheckpointError
    cfg = tiny_config(train_data, tmp_path / "run", pretrain=4, adversarial=0,
                      checkpoint={"every": 2}, val={"every": 2})
    _train_in_process(cfg)
    d = tmp_path / "run/class0"
    latest = d / "latest.ckpt.safetensors"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 3])
    with pytest.raises(CheckpointError) as e:
        _train_in_process(cfg)
    msg = str(e.value)
    assert "unreadable checkpoint" in msg and "written at step 4" in msg
    assert "continue from the best checkpoint (step" in msg
    assert f"cp {d / 'best.ckpt.safetensors'} {latest}" in msg and "--fresh" in msg


def test_summary_keeps_a_valid_bundle_of_an_earlier_run(train_data, tmp_path):  # noqa: F811
    from paddle_mmsr.train.run import assemble_results, resolve_jobs, run_training
    out = tmp_path / "out"
    cfg = _cfg(tiny_config(train_data, out, pretrain=2, adversarial=0, val={"dir": None}))
    assert run_training(cfg) == 0
    assert json.loads((out / "summary.json").read_text())["bundle"] == str(out / "bundle")
    (out / "class1/summary.json").unlink()  # e.g. class 1 being trained again
    jobs, tvat, split = resolve_jobs(cfg)
    res = assemble_results(cfg, jobs, tvat, split, log=lambda m: None)
    s = json.loads((out / "summary.json").read_text())
    assert s["bundle"] == res["bundle"] == str(out / "bundle")
    assert [c["status"] for c in s["classes"]] == ["done", "missing", "done"]
    w = out / "bundle/class0.safetensors"  # a damaged bundle is not kept
    w.write_bytes(np.zeros(8, np.uint8).tobytes())
    assemble_results(cfg, jobs, tvat, split, log=lambda m: None)
    assert json.loads((out / "summary.json").read_text())["bundle"] is None
