import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from paddle_mmsr.config import ConfigError, apply_overrides, load_config, parse_config
from paddle_mmsr.train.batches import batch_indices
from paddle_mmsr.train.placement import training_cost, classes_of_rank, place_classes, rank_info, rank_loads

MINIMAL = {"data": {"sources": ["some/folder"]}}


CONFIGS = [p for d in ("configs", "benchmarks/configs",
                                                "pretrained/provenance/configs") for p in sorted((ROOT / d).glob("*.yaml"))]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = load_config(path)
    assert cfg.classes and cfg.train.pretrain_iters + cfg.train.adversarial_iters > 0


def test_paper_config_defaults():
    cfg = load_config(ROOT / "configs/mmsr_x4.yaml")
    assert [c.spec for c in cfg.classes] == ["4-6", "8-6", "16-8"]
    assert cfg.loss.adv_weight == pytest.approx(1e-3) and cfg.loss.vgg_layer == "conv5_4"
    assert cfg.optim.generator.lr == pytest.approx(1e-4)
    assert (cfg.optim.generator.beta1, cfg.optim.generator.beta2) == (0.9, 0.999)
    assert cfg.train.d_updates == 1
    assert cfg.generator_options(0)["form"] == "srgan"


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"unknown key 'data\.crp'.*did you mean 'crop'"):
        parse_config({"data": {"crp": 96, "sources": ["x"]}})
    with pytest.raises(ConfigError, match=r"'trian'.*did you mean 'train'"):
        parse_config({**MINIMAL, "trian": {}})
    with pytest.raises(ConfigError, match=r"classes\.0\.generator\.chanels.*'channels'"):
        parse_config({**MINIMAL, "classes": [{"spec": "4-6", "generator": {"chanels": 8}}]})


def test_types_and_choices_are_checked():
    with pytest.raises(ConfigError, match="train.pretrain_iters: expected an integer"):
        parse_config({**MINIMAL, "train": {"pretrain_iters": "many"}})
    with pytest.raises(ConfigError, match="did you mean 'fast'"):
        parse_config({**MINIMAL, "model": {"generator": {"form": "fats"}}})
    with pytest.raises(ConfigError, match="not a multiple of scale"):
        parse_config({"data": {"sources": ["x"], "crop": 90}})
    with pytest.raises(ConfigError, match="spec"):
        parse_config({**MINIMAL, "classes": [{"spec": "16x8"}]})
    with pytest.raises(ConfigError, match="data.split"):
        parse_config({})
    cfg = parse_config({**MINIMAL, "optim": {"pretrain": {"lr": "2e-4"}}})  # YAML reads 2e-4 as str
    assert cfg.optim.pretrain.lr == pytest.approx(2e-4)


def test_overrides():
    raw = {**MINIMAL, "classes": [{"spec": "4-6"}, {"spec": "8-6"}],
           "tvat": {"bounds": [2.0]}}
    raw["classes"][0]["sources"] = ["a"]
    raw["classes"][1]["sources"] = ["b"]
    cfg = parse_config(raw, ["train.pretrain_iters=7", "classes.1.spec=2-2",
                             "optim.pretrain.milestones=[3, 5]", "loss.pixel=l1",
                             "classes.0.generator.channels=16", "val.dir=null"])
    assert cfg.train.pretrain_iters == 7 and cfg.classes[1].spec == "2-2"
    assert cfg.optim.pretrain.milestones == [3, 5] and cfg.loss.pixel == "l1"
    assert cfg.generator_options(0)["channels"] == 16 and cfg.generator_options(1)["channels"] == 64
    assert raw["classes"][1]["spec"] == "8-6"  # the input is not modified
    with pytest.raises(ConfigError, match="did you mean 'pretrain_iters'"):
        parse_config(raw, ["train.pretrain_iter=7"])
    with pytest.raises(ConfigError, match="not an index"):
        apply_overrides(raw, ["classes.5.spec=4-6"])
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(raw, ["train.pretrain_iters"])


def test_per_class_iterations_and_spec_width():
    raw = {**MINIMAL, "classes": [{"spec": "4-6w16", "pretrain_iters": 50, "sources": ["a"]},
                                  {"spec": "16-8", "sources": ["b"]}],
           "tvat": {"bounds": [2.0]}, "model": {"generator": {"form": "compact"}}}
    cfg = parse_config(raw, ["train.pretrain_iters=200", "optim.pretrain.milestones=[100, 150]"])
    c0, c1 = cfg.for_class(0), cfg.for_class(1)
    assert c0.train.pretrain_iters == 50 and c0.optim.pretrain.milestones == [25, 38]
    assert c1 is cfg and cfg.train.pretrain_iters == 200  # the shared config is not changed
    assert cfg.optim.pretrain.milestones == [100, 150]
    assert cfg.generator_options(0)["channels"] == 16  # the spec's width, not the model's 64
    assert cfg.generator_options(1)["channels"] == 64
    same = parse_config(raw, ["classes.0.generator.channels=16"])
    assert same.generator_options(0)["channels"] == 16
    with pytest.raises(ConfigError, match=r"classes\.0\.spec: model spec 4-6w16 sets the width "
                                          "to 16, but channels is 32"):
        parse_config(raw, ["classes.0.generator.channels=32"])
    with pytest.raises(ConfigError, match="spec"):
        parse_config({**raw, "classes": [{"spec": "4-6x16"}, {"spec": "8-6"}]})


def test_cli_refuses_a_mistyped_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**MINIMAL, "checkpiont": {"every": 5}}))
    r = subprocess.run([sys.executable, str(ROOT / "tools/train.py"), "-c", str(p), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "did you mean 'checkpoint'" in r.stderr


def test_placement_by_cost():
    # longest first, each to the least loaded rank
    assert place_classes([1.0, 1.0, 1.0], 3) == {0: [0], 1: [1], 2: [2]}
    assert place_classes([2.0, 5.0, 3.0], 2) == {0: [1], 1: [0], 2: [1]}
    assert place_classes([3.0, 3.0, 4.0, 2.0], 2) == {0: [1], 1: [1], 2: [0], 3: [0]}
    assert place_classes([1.0, 2.0, 3.0], 1) == {0: [0], 1: [0], 2: [0]}
    # more ranks than classes: the spare ranks replicate the costliest per rank
    assert place_classes([1.0, 2.0, 6.0], 5) == {0: [2], 1: [1], 2: [0, 3, 4]}
    assert place_classes([1.0, 4.0, 6.0], 5) == {0: [2], 1: [1, 4], 2: [0, 3]}
    # a class takes at most max_ranks (its batch size); further spare ranks get nothing
    assert place_classes([1.0, 2.0, 6.0], 6, max_ranks=2) == {0: [2, 5], 1: [1, 4], 2: [0, 3]}
    assert place_classes([1.0, 2.0, 6.0], 5, max_ranks=1) == {0: [2], 1: [1], 2: [0]}
    owners = place_classes([1.0, 2.0, 6.0], 4)
    assert classes_of_rank(owners, 3) == [2] and classes_of_rank(owners, 1) == [1]
    assert rank_loads(owners, [1.0, 2.0, 6.0]) == {0: 3.0, 1: 2.0, 2: 1.0, 3: 3.0}
    with pytest.raises(ValueError):
        place_classes([1.0], 0)


def test_training_cost_follows_the_spec_and_the_schedule():
    cfg = parse_config({"classes": [{"spec": s, "sources": ["x"]} for s in ("4-6", "8-6", "16-8")],
                        "tvat": {"bounds": [2.0, 4.0]},
                        "train": {"pretrain_iters": 100, "adversarial_iters": 0}})
    small, mid, big = (training_cost(cfg, c) for c in range(3))
    assert small < mid < big
    # 64 channels, x4: 16-8 costs about 1.8 times 4-6 in phase 1 (upsampling is shared)
    assert 1.5 < big / small < 2.2
    assert place_classes([small, mid, big], 2) == {0: [1], 1: [1], 2: [0]}
    longer = parse_config({"classes": [{"spec": "4-6", "sources": ["x"]}],
                           "train": {"pretrain_iters": 200, "adversarial_iters": 0}})
    assert training_cost(longer, 0) == pytest.approx(2 * small)


    env = {"PADDLE_TRAINER_ID": "1", "PADDLE_TRAINERS_NUM": "3", "PADDLE_LOCAL_RANK": "1",
           "PADDLE_TRAINER_ENDPOINTS": "127.0.0.1:1,127.0.0.1:2", "PADDLE_MASTER": "x:3"}
    info = rank_info(env)
    assert (info.rank, info.world_size, info.local_rank) == (1, 3, 1)
    assert rank_info({**env, "PADDLE_TRAINER_ID": "0"}).run_id == info.run_id
    assert rank_info({}).world_size == 1 and rank_info({}).run_id != info.run_id
    assert info.nodes == 1  # no PADDLE_LOCAL_SIZE: one launcher
    assert rank_info({**env, "PADDLE_TRAINERS_NUM": "4", "PADDLE_LOCAL_SIZE": "2"}).nodes == 2


def test_batch_indices_are_resumable_permutations():
    n, bs = 7, 3
    flat = [k for b in range(7) for k in batch_indices(b, bs, n, seed=1)]
    for e in range(3):  # every epoch is a permutation of the dataset
        assert sorted(k % n for k in flat[e * n:(e + 1) * n]) == list(range(n))
        assert all(k // n == e for k in flat[e * n:(e + 1) * n])
    assert batch_indices(5, bs, n, seed=1) == flat[15:18]
    assert batch_indices(5, bs, n, seed=2) != flat[15:18]


def test_settings_that_a_split_would_ignore_are_refused():
    with pytest.raises(ConfigError, match="split's TVAT settings"):
        parse_config({"data": {"split": "s"}, "tvat": {"bounds": [2.0]}})
    with pytest.raises(ConfigError, match="data.sources is not used with data.split"):
        parse_config({"data": {"split": "s", "sources": ["x"]}})


def test_committed_configs_and_manifests_hold_no_machine_paths():
    """Shipped configs and bundle manifests use paths relative to the repository."""
    import yaml

    def strings(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)
        elif isinstance(node, str):
            yield node

    files = CONFIGS + sorted(ROOT.glob("pretrained/*/manifest.yaml"))
    assert len(files) >= 10
    for f in files:
        text = f.read_text()
        assert "../shared" not in text and "/work/" not in text, f
        bad = [s for s in strings(yaml.safe_load(text)) if s.startswith(("/", "~"))]
        assert not bad, f"{f}: absolute paths {bad}"


def test_old_film_degradation_options_are_validated():
    cfg = load_config(ROOT / "configs/old_film_x4.yaml")
    d = cfg.data.degradation
    assert (d.gray, d.video, d.video_q) == (True, "h264", 32) and d.grain > 0 and d.blur > 0
    cfg = parse_config(MINIMAL, ["data.degradation.gray=true", "data.degradation.jpeg=40"])
    assert cfg.data.degradation.gray and cfg.data.degradation.jpeg == 40
    assert parse_config({**MINIMAL, "data": {**MINIMAL["data"], "degradation": None}}).data \
        .degradation is None
    for bad in (["data.degradation.video=vp9"], ["data.degradation.grain=-2"],
                ["data.degradation.video=h264", "data.degradation.video_q=99"],
                ["data.degradation.gray=3"]):
        with pytest.raises(ConfigError):
            parse_config(MINIMAL, bad)


def test_placement_cost_knows_compact_models_and_class_budgets():
    from paddle_mmsr.train.placement import training_cost
    raw = {**MINIMAL, "model": {"generator": {"form": "compact", "head_kernel": 3,
                                              "tail_kernel": 3}},
           "classes": [{"spec": "4-6w16", "sources": ["a"]}, {"spec": "16-8w48", "sources": ["b"]},
                       {"spec": "16-8w48", "pretrain_iters": 50, "sources": ["c"]}],
           "tvat": {"bounds": [1.0, 2.0]}}
    cfg = parse_config(raw, ["train.pretrain_iters=100", "train.adversarial_iters=0"])
    small, large, short = (training_cost(cfg, c) for c in range(3))
    # per LR pixel: head 3*C*9, 2 convs a block, mid conv, tail to 48 channels, all at LR
    per_px = lambda c, n: 3 * c * 9 + n * 2 * 9 * c * c + 9 * c * c + 48 * c * 9  # noqa: E731
    assert large / small == pytest.approx(per_px(48, 16) / per_px(16, 4))
    assert short == pytest.approx(large / 2)
