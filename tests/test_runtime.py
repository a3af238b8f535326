"""Process settings: applied only where the user set nothing (speed is measured by
benchmarks/speed.py, not here)."""
import os

from paddle_mmsr import runtime
from paddle_mmsr.sr.inference import default_threads


def test_settings_applied_when_unset(monkeypatch):
    monkeypatch.delenv("KMP_BLOCKTIME", raising=False)
    monkeypatch.delenv("PADDLE_MMSR_TUNING", raising=False)
    for k in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(k)
    done = runtime.tune_process()
    assert os.environ["KMP_BLOCKTIME"] == runtime.BLOCKTIME == done["KMP_BLOCKTIME"]
    assert "malloc" in done  # glibc here (Linux CI)


def test_user_settings_are_kept(monkeypatch):
    monkeypatch.setenv("KMP_BLOCKTIME", "200")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    monkeypatch.delenv("PADDLE_MMSR_TUNING", raising=False)
    assert runtime.tune_process() == {}
    assert os.environ["KMP_BLOCKTIME"] == "200"
    monkeypatch.delenv("KMP_BLOCKTIME")
    monkeypatch.setenv("PADDLE_MMSR_TUNING", "0")
    assert runtime.tune_process() == {} and "KMP_BLOCKTIME" not in os.environ


def test_threads_follow_omp_num_threads_else_physical_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= default_threads() == runtime.physical_cores() <= len(os.sched_getaffinity(0))
