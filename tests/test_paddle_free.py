"""The paddle-free core: specs, config, bundle manifests, TVAT, routing, metrics,
image I/O and the CLIs' argument parsing work with Paddle absent."""
import subprocess
import sys
import textwrap

from conftest import ROOT

CORE = ["paddle_mmsr", "paddle_mmsr.models", "paddle_mmsr.core.spec", "paddle_mmsr.config",
        "paddle_mmsr.core.manifest", "paddle_mmsr.core.tiles", "paddle_mmsr.sr.route",
        "paddle_mmsr.sr.stitch", "paddle_mmsr.core.tvat", "paddle_mmsr.data.split",
        "paddle_mmsr.data.manifest", "paddle_mmsr.metrics.psnr_ssim", "paddle_mmsr.metrics.niqe",
        "paddle_mmsr.metrics.evaluate", "paddle_mmsr.image.io", "paddle_mmsr.image.resize",
        "paddle_mmsr.image.degrade", "paddle_mmsr.image.panels", "paddle_mmsr.notebook",
        "paddle_mmsr.cli.upscale", "paddle_mmsr.cli.split", "paddle_mmsr.cli.evaluate",
        "paddle_mmsr.cli.get_vgg19", "paddle_mmsr.cli.train", "paddle_mmsr.cli.prepare_demo",
        "paddle_mmsr.cli.calibrate", "paddle_mmsr.cli.gpu_check"]


def run_without_paddle(code: str) -> subprocess.CompletedProcess:
    prelude = "import sys\nsys.modules['paddle'] = None  # any 'import paddle' now fails\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=ROOT)


def test_core_modules_import_and_work_without_paddle():
    p = run_without_paddle(f"""
        import importlib
        for name in {CORE!r}:
            importlib.import_module(name)
        import numpy as np
        from paddle_mmsr.config import load_config
        from paddle_mmsr.core.manifest import load_bundle
        from paddle_mmsr.sr.route import route
        from paddle_mmsr.metrics.evaluate import bicubic_upscaler, evaluate_images
        cfg = load_config("configs/mmsr_x4.yaml")
        b = load_bundle("pretrained/mmsr_x4_bicubic")
        img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
        ids = route([b.tvat.score(img), 0.0], b)
        hr = img[:64, :64]
        res = evaluate_images([(hr[::4, ::4], hr, "x")], bicubic_upscaler(4), 4)
        assert "paddle" not in {{m.split(".")[0] for m, v in sys.modules.items() if v}}
        print(len(cfg.classes), b.tvat.n_classes, list(ids), round(res["mean"]["psnr"], 1))
        """)
    assert p.returncode == 0, p.stderr
    n_cfg, n_bundle, *_ = p.stdout.split()
    assert n_cfg == "3" and n_bundle == "3"


def test_cli_help_without_paddle():
    p = run_without_paddle("""
        from paddle_mmsr.cli import (calibrate, evaluate, get_vgg19, gpu_check, prepare_demo,
                                     split, train, upscale)
        for main in (upscale.parse_args, split.main, evaluate.main, get_vgg19.main, train.main,
                     prepare_demo.main, calibrate.main, gpu_check.main):
            try:
                main(["--help"])
            except SystemExit as e:
                assert e.code == 0
        """)
    assert p.returncode == 0, p.stderr
    for command in ("mmsr-upscale", "mmsr-split", "mmsr-evaluate", "mmsr-get-vgg19", "mmsr-train",
                    "mmsr-prepare-demo", "mmsr-calibrate", "mmsr-gpu-check"):
        assert f"usage: {command} " in p.stdout, command  # the command's name, not its file's
    assert "--routing {tvat,single}" in p.stdout and "--backend {auto,inference,dygraph}" in p.stdout


def test_metrics_modules_do_not_import_each_other_in_a_cycle():
    p = run_without_paddle("""
        import paddle_mmsr.metrics.psnr_ssim, paddle_mmsr.metrics.evaluate
        assert "paddle_mmsr.metrics.niqe" not in sys.modules  # loaded only when NIQE is asked for
        import paddle_mmsr.metrics.niqe
        """)
    assert p.returncode == 0, p.stderr


def test_commands_without_paddle_say_how_to_install_it(tmp_path):
    out = tmp_path / "out"
    p = run_without_paddle(f"""
        from paddle_mmsr.cli import calibrate, evaluate, gpu_check, upscale
        codes = [upscale.main(["examples/chelsea_lr.png", "-o", {str(out)!r}]),
                 evaluate.main(["--method", "mmsr", "--bundle", "pretrained/mmsr_x4_bicubic",
                                "examples"]),
                 calibrate.main(["pretrained/mmsr_x4_bicubic", "examples"]),
                 gpu_check.main(["--cpu"])]
        print(codes)
        """)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[2, 2, 2, 2]"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 4 and "Traceback" not in p.stderr
    assert all("needs PaddlePaddle" in line and "pip install paddlepaddle" in line for line in lines)
    assert not list(out.glob("*.png"))
