import os
import sys
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
