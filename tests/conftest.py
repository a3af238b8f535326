import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
# tools/*.py run in subprocesses import the package of this checkout, not another installed one
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
warnings.filterwarnings("ignore", message="No ccache found")

# Hermetic: no test reads or writes the user's home or cache. HOME and XDG_CACHE_HOME
# point at an empty folder from here on (imports, collection, subprocesses), each test
# gets its own fresh one, and the session fails if the real caches changed anyway.
REAL_HOME = Path(os.path.expanduser("~")).resolve()
REAL_CACHES = [REAL_HOME / ".cache" / n for n in ("paddle_mmsr", "paddle-mmsr")]
SESSION_HOME = Path(tempfile.mkdtemp(prefix="mmsr-test-home-"))
os.environ.update(HOME=str(SESSION_HOME), XDG_CACHE_HOME=str(SESSION_HOME / ".cache"),
                  MPLCONFIGDIR=str(SESSION_HOME / "mpl"))  # matplotlib's font cache, shared
os.environ.pop("PADDLE_MMSR_VGG19", None)


def _snapshot(dirs) -> list:
    return sorted((str(f), f.stat().st_size, f.stat().st_mtime_ns)
                  for d in dirs if d.exists() for f in [d, *d.rglob("*")])


_REAL_CACHES_BEFORE = _snapshot(REAL_CACHES)


@pytest.fixture(autouse=True)
def fresh_home(tmp_path_factory, monkeypatch):
    """Every test starts with an empty HOME and XDG_CACHE_HOME of its own."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    return home


def pytest_sessionfinish(session, exitstatus):
    if _snapshot(REAL_CACHES) != _REAL_CACHES_BEFORE:
        print(f"\nFAILED hermetic check: the tests changed {[str(d) for d in REAL_CACHES]}")
        session.exitstatus = 1
    shutil.rmtree(SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def photos():
    """Real photos bundled with scikit-image (public domain / CC0)."""
    from skimage import data
    return {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea(),
            "rocket": data.rocket(), "camera": data.camera()}


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data not present (developer machines only)")
    return SHARED_DATA


def crop(img, size, y=0, x=0):
    return np.ascontiguousarray(img[y:y + size, x:x + size])


def load_weights(path) -> dict:
    """{key: Paddle tensor} of a safetensors weights file."""
    import paddle
    from safetensors.numpy import load_file
    return {k: paddle.to_tensor(v) for k, v in load_file(str(path)).items()}
