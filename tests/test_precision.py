"""Precision selection: bf16 only where the CPU (flags) or GPU has it and the bundle's
recorded bf16 cost is small; fp32 when asked for, whatever the hardware. This machine
may lack bf16, so the CPU is faked through its flags; bf16 speed is measured by the
benchmark on a CPU that has it (benchmarks/speed.py), not here."""
from __future__ import annotations

import numpy as np
import pytest

from paddle_mmsr.sr import precision
from paddle_mmsr.sr.precision import MAX_BF16_COST_DB, choose_precision, cpu_flags, cpu_has_bf16

AVX2_ONLY = "fpu sse sse2 avx fma avx2 bmi2 sha_ni"  # an AMD EPYC (Zen 1) line
SAPPHIRE = "fpu sse avx2 avx512f avx512bw avx512vl avx512_bf16 amx_bf16 amx_tile amx_int8"


def fake_cpuinfo(tmp_path, flags: str):
    p = tmp_path / "cpuinfo"
    p.write_text(f"processor\t: 0\nvendor_id\t: X\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
                 f"flags\t\t: {flags}\n")
    return p


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    assert "avx2" in cpu_flags(fake_cpuinfo(tmp_path, AVX2_ONLY))
    assert not cpu_has_bf16(cpu_flags(fake_cpuinfo(tmp_path, AVX2_ONLY)))
    assert cpu_has_bf16(cpu_flags(fake_cpuinfo(tmp_path, SAPPHIRE)))
    assert cpu_has_bf16({"avx512_bf16"}) and cpu_has_bf16({"amx_bf16"})
    assert cpu_flags(tmp_path / "missing") == frozenset()  # not Linux: no flags, fp32


@pytest.mark.parametrize("requested, has, cost, expected", [
    ("auto", True, 0.001, "bf16"),
    ("auto", True, MAX_BF16_COST_DB, "bf16"),
    ("auto", True, 0.02, "fp32"),            # bf16 costs this bundle too much
    ("auto", True, None, "fp32"),            # cost never measured
    ("auto", False, 0.001, "fp32"),          # no native bf16
    ("fp32", True, 0.001, "fp32"),           # forced fp32 on a bf16 CPU
    ("bf16", True, 0.5, "bf16"),             # asked for by name: the user's choice
])
def test_choose_precision(requested, has, cost, expected):
    chosen, why = choose_precision(requested, "cpu", cost, has_bf16=has)
    assert chosen == expected and why


def test_bf16_refused_without_hardware_and_bad_names():
    with pytest.raises(ValueError, match="does not compute bfloat16"):
        choose_precision("bf16", "cpu", 0.0, has_bf16=False)
    with pytest.raises(ValueError, match="precision must be one of"):
        choose_precision("fp16", "cpu")


class RecordingConfig:
    """Stands in for paddle.inference.Config: records the calls made on it."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *a: self.calls.append((name, a))


def test_cpu_config_bf16_only_when_chosen():
    from paddle_mmsr.sr.inference import configure_cpu
    names = {}
    for p in ("fp32", "bf16"):
        cfg = RecordingConfig()
        configure_cpu(cfg, 2, p)
        names[p] = [c[0] for c in cfg.calls]
        assert ("set_cpu_math_library_num_threads", (2,)) in cfg.calls
        # only the crashing conv + activation fusion is left out: bias and residual fuse
        assert [c[1] for c in cfg.calls if c[0] == "delete_pass"] == \
            [("conv_activation_onednn_fuse_pass",)]
    assert "enable_mkldnn_bfloat16" in names["bf16"]
    assert "enable_mkldnn_bfloat16" not in names["fp32"]


@pytest.fixture
def bf16_bundle(tmp_path):
    pytest.importorskip("paddle")
    from paddle_mmsr.core.tvat import TVATSettings
    from paddle_mmsr.models import build_generator
    from paddle_mmsr.core.manifest import load_bundle, write_manifest
    from paddle_mmsr.models.weights import make_bundle
    opts = dict(channels=8, form="compact", head_kernel=3, tail_kernel=3)
    b = make_bundle(tmp_path / "b", [("1-1w8", opts, build_generator("1-1w8", 4, **opts))],
                    TVATSettings(bounds=[]))
    b.bf16_psnr_cost = 0.002
    write_manifest(b)
    assert load_bundle(b.root).bf16_psnr_cost == 0.002  # the manifest keeps the figure
    return b.root


@pytest.mark.parametrize("flags, requested, expected", [
    (SAPPHIRE, "auto", "bf16"), (SAPPHIRE, "fp32", "fp32"), (AVX2_ONLY, "auto", "fp32")])
def test_mmsr_passes_the_chosen_precision_to_its_runners(bf16_bundle, tmp_path, monkeypatch,
                                                         flags, requested, expected):
    from paddle_mmsr import MMSR
    from paddle_mmsr.sr import reconstruct
    monkeypatch.setattr(precision, "CPUINFO", fake_cpuinfo(tmp_path, flags))
    seen = []

    def fake_runner(*args):
        seen.append(args[8])  # make_runner(..., max_input, precision, on_export)
        return type("R", (), {"run": staticmethod(lambda x: np.zeros(
            (x.shape[0], 3, x.shape[2] * 4, x.shape[3] * 4), np.float32))})()

    monkeypatch.setattr(reconstruct, "make_runner", fake_runner)
    sr = MMSR.load(bf16_bundle, precision=requested)
    assert sr.precision == expected
    sr.upscale(np.zeros((20, 20, 3), np.uint8))
    assert seen == [expected]


def test_forced_fp32_runs_on_a_bf16_cpu(bf16_bundle, tmp_path, monkeypatch):
    """A real predictor, fp32 forced while the flags claim AMX: built without bf16
    and equal to dygraph."""
    from paddle_mmsr import MMSR
    monkeypatch.setattr(precision, "CPUINFO", fake_cpuinfo(tmp_path, SAPPHIRE))
    img = (np.random.default_rng(1).random((24, 20, 3)) * 255).astype(np.uint8)
    fast = MMSR.load(bf16_bundle, precision="fp32", threads=1)
    assert fast.precision == "fp32" and fast.runner(0).precision == "fp32"
    ref = MMSR.load(bf16_bundle, backend="dygraph").upscale(img)
    assert np.abs(fast.upscale(img).astype(int) - ref.astype(int)).max() <= 1


def test_bf16_with_dygraph_or_on_this_cpu_is_a_clear_error(bf16_bundle, tmp_path, monkeypatch):
    from paddle_mmsr import MMSR
    monkeypatch.setattr(precision, "CPUINFO", fake_cpuinfo(tmp_path, SAPPHIRE))
    with pytest.raises(ValueError, match="Paddle Inference only"):
        MMSR.load(bf16_bundle, backend="dygraph", precision="bf16")
    assert MMSR.load(bf16_bundle, backend="dygraph").precision == "fp32"
    monkeypatch.setattr(precision, "CPUINFO", fake_cpuinfo(tmp_path, AVX2_ONLY))
    with pytest.raises(ValueError, match="does not compute bfloat16"):
        MMSR.load(bf16_bundle, precision="bf16")
