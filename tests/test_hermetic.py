"""The suite runs as on a fresh machine: nothing of the user's home is visible."""
import os
from pathlib import Path

from conftest import REAL_HOME, _snapshot


def test_home_and_caches_are_empty_temporary_folders(fresh_home):
    assert Path.home() == fresh_home != REAL_HOME
    assert os.environ["XDG_CACHE_HOME"] == str(fresh_home / ".cache")
    assert list(fresh_home.iterdir()) == []
    assert "PADDLE_MMSR_VGG19" not in os.environ
    from paddle_mmsr.models.vgg import default_weights_paths
    assert not any(str(p).startswith(str(REAL_HOME / ".cache")) for p in default_weights_paths())


def test_snapshot_sees_a_new_cache_file(tmp_path):
    """The session-end check compares these snapshots: a written file must show."""
    cache = tmp_path / "paddle_mmsr"
    cache.mkdir()
    before = _snapshot([cache])
    (cache / "vgg19_features.safetensors").write_bytes(b"x")
    assert _snapshot([cache]) != before
