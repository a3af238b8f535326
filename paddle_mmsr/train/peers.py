"""Rank status files: how ranks learn about each other without collectives.

Each rank keeps ``<output>/status/rank<r>.json`` up to date (a background
thread refreshes its heartbeat): the launch's run id, the state of each of
its classes (pending, running, done, failed) and its phase (training,
finished, finalized). Rank 0 waits for every rank to be finished before it
assembles the bundle; a rank whose class failed waits for rank 0 to finalize
before it exits non-zero (the launcher stops all ranks when one exits with an
error). A rank whose heartbeat has not changed for ``stale_after`` seconds,
as seen by the reader's clock, is taken as lost. Multi-node runs need the
output folder on a shared file system for this.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_status(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class RankStatus:
    def __init__(self, out_dir, info, classes, interval: float = 5.0):
        self.path = Path(out_dir) / "status" / f"rank{info.rank}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data = {"run_id": info.run_id, "rank": info.rank, "pid": os.getpid(),
                     "host": info.host, "phase": "training", "beat": 0,
                     "classes": {str(c): {"state": "pending"} for c in classes}}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._write()
        self._thread = threading.Thread(target=self._beat, args=(interval,), daemon=True)
        self._thread.start()

    def _write(self) -> None:
        with self._lock:
            self.data["beat"] += 1
            self.data["time"] = time.time()
            _write_json(self.path, self.data)

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._write()
            except OSError:
                pass

    def set_class(self, class_id: int, state: str, **extra) -> None:
        with self._lock:
            self.data["classes"][str(class_id)] = {"state": state, **extra}
        self._write()

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.data["phase"] = phase
        self._write()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._write()


def wait_for_ranks(out_dir, run_id: str, ranks, phases=("finished", "finalized"),
                   stale_after: float = 300.0, poll: float = 2.0, log=print,
                   stop=lambda: False) -> dict:
    """Wait until every rank in ``ranks`` reached one of ``phases`` (or is lost).

    Returns {rank: status dict, or None if lost}.
    """
    out_dir = Path(out_dir)
    seen = {r: (None, time.monotonic()) for r in ranks}  # last beat, when it last changed
    result, told = {}, False
    while True:
        for r in ranks:
            if r in result:
                continue
            st = read_status(out_dir / "status" / f"rank{r}.json")
            beat = st.get("beat") if st and st.get("run_id") == run_id else None
            if beat is not None and st.get("phase") in phases:
                result[r] = st
                continue
            if beat != seen[r][0]:
                seen[r] = (beat, time.monotonic())
            elif time.monotonic() - seen[r][1] > stale_after:
                log(f"rank {r}: no sign of life for {stale_after:.0f} s, taken as lost")
                result[r] = None
        if len(result) == len(ranks) or stop():
            return result
        if not told:
            log(f"waiting for ranks {sorted(set(ranks) - set(result))} to finish")
            told = True
        time.sleep(poll)
