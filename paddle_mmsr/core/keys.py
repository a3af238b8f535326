"""Unknown keys in a config or a manifest: the message names the closest valid one."""
from __future__ import annotations

import difflib

__all__ = ["suggest"]


def suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
