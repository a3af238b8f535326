"""How the ranks of one launch meet when training ends, through Paddle's
distributed engine: no shared folder, works across nodes.

Every launched rank joins Paddle's process group (``init_parallel_env``:
gloo on CPU, NCCL on GPU) and so the launch's rendezvous store (the TCPStore
the group was formed with, served by rank 0).

- While it trains, each rank's background thread bumps its heartbeat counter
  in the store.
- A rank done with its classes adds itself to the ``finished`` counter and
  waits, polling the store, until every rank finished, one is lost (its
  heartbeat did not move for ``stale_after`` s on the waiter's clock), one
  stopped on a signal, or rank 0 called the run off. The wait goes through
  the store because a gloo collective gives up after 30 s, and ranks finish
  minutes or hours apart.
- When every rank finished they are all at the same point, and the short
  collective part runs: the ranks' reports (class status and reason, final
  generator weights, busy time) are gathered (as safetensors bytes); rank 0
  assembles the bundle from them and tells every rank whether it did
  (bytes over a broadcast: no pickles between ranks).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
import time

# seconds without a heartbeat before a rank is taken as lost
STALE_AFTER = float(os.environ.get("PADDLE_MMSR_PEER_TIMEOUT", "120"))


def _store_endpoint() -> tuple:
    """host, port of the launch's store, found as init_parallel_env finds it."""
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if addr and port:
        return addr, int(port)
    ep = os.environ.get("PADDLE_MASTER") or os.environ["PADDLE_TRAINER_ENDPOINTS"].split(",")[0]
    host, port = ep.rsplit(":", 1)
    return host, int(port)


# Paddle prints the flags the launcher set (a "Modified FLAGS detected" banner) when a
# rank joins: nothing the user set or can act on
_FLAGS_BANNER = re.compile(r"=+ Modified FLAGS detected =+\n(?:FLAGS\(.*\)\n)*=+\n")


def _join_quietly(dist):
    """``dist.init_parallel_env()`` without the flags banner; anything else it
    writes to stderr is passed on."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            return dist.init_parallel_env()
    finally:
        sys.stderr.write(_FLAGS_BANNER.sub("", buf.getvalue()))


class Team:
    """This rank's membership of the launch (``world_size`` > 1 only)."""

    def __init__(self, info, stale_after: float = STALE_AFTER, beat_every: float | None = None):
        import paddle.distributed as dist
        from paddle.base import core
        self.info, self.stale_after = info, stale_after
        self.group = _join_quietly(dist)
        self.store = core.create_or_get_global_tcp_store()
        self._key = f"mmsr/{info.run_id}/"
        host, port = _store_endpoint()
        # the heartbeat thread gets its own connection: one client per thread
        self._beat_store = core.TCPStore(host, port, False, info.world_size, 900)
        self._stop = threading.Event()
        self._beat_every = beat_every or max(min(stale_after / 6, 10.0), 0.5)
        self._beat_store.add(self._key + f"beat/{info.rank}", 1)
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self._beat_every):
            try:
                self._beat_store.add(self._key + f"beat/{self.info.rank}", 1)
            except Exception:  # store gone (rank 0 exited): nothing left to tell
                return

    def _count(self, name: str, add: int = 0) -> int:
        return int(self.store.add(self._key + name, add))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    # ---------------------------------------------------------- waiting
    def leave(self, reason: str = "stopped: signal (its checkpoints are saved on its node)") -> None:
        """Tell the others this rank stops before finishing, and why."""
        try:
            self.store.set(self._key + f"why/{self.info.rank}", reason.encode())
            self._count(f"stopped/{self.info.rank}", 1)
        except Exception:
            pass

    def call_off(self) -> None:
        """Rank 0: the bundle will not be made; ranks still waiting can exit."""
        self._count("called_off", 1)

    def wait_for_all(self, stop=lambda: False, log=print, poll: float = 1.0) -> dict:
        """Mark this rank finished and wait for the others.

        Returns {rank: "finished" | "lost: ..." | "stopped: ..."}, every rank
        "finished" when the collective part can run. Non-zero ranks return
        early (with rank 0 marked "called off") when rank 0 gave up.
        """
        me, world = self.info.rank, self.info.world_size
        self._count("finished", 1)
        beats = {r: (None, time.monotonic()) for r in range(world) if r != me}
        told = False
        while True:
            try:
                if self._count("finished") >= world:
                    return {r: "finished" for r in range(world)}
                if me != 0 and self._count("called_off"):
                    return {0: "called off: rank 0 gave up on the bundle"}
                status = {}
                for r, (last, since) in beats.items():
                    beat = self._count(f"beat/{r}")
                    if self._count(f"stopped/{r}"):  # its reason was set before the count
                        status[r] = bytes(self.store.get(self._key + f"why/{r}")).decode()
                    elif beat != last:
                        beats[r] = (beat, time.monotonic())
                    elif time.monotonic() - since > self.stale_after:
                        status[r] = f"lost: no heartbeat for {self.stale_after:.0f} s"
            except Exception as e:  # the store is served by rank 0: it is gone
                return {0: f"lost: the launch's store stopped answering ({type(e).__name__})"}
            if status and me == 0:
                return status
            if stop():
                self.leave("stopped: signal while waiting (its classes were done)")
                return {me: "stopped: signal"}
            if not told:
                log(f"waiting for the other ranks to finish (a rank silent for "
                    f"{self.stale_after:.0f} s is taken as lost)")
                told = True
            time.sleep(poll)

    # ---------------------------------------------------------- collective part
    def gather_reports(self, report: dict):
        """{rank: report} of every rank (``gather_bytes``: the same collective on
        every rank; the weights are a few MB per class). Only rank 0 keeps them."""
        from paddle_mmsr.core.safe_files import state_from_bytes, state_to_bytes
        got = gather_bytes(state_to_bytes(report))
        return ({r: state_from_bytes(got[r]) for r in range(len(got))}
                if self.info.rank == 0 else None)

    def share_outcome(self, assembled: bool | None) -> bool:
        """Rank 0 tells every rank whether the bundle was assembled."""
        data = broadcast_bytes(b"1" if assembled else b"0", 0, self.info.rank == 0)
        return data == b"1"


# Ranks exchange bytes (safetensors files, see safe_files.state_to_bytes) over
# tensor collectives, never pickles (Paddle's *_object collectives unpickle).
def gather_bytes(data: bytes, group=None) -> list:
    """Every rank's ``data``, in rank order (lengths first, then padded bytes)."""
    import numpy as np
    import paddle
    import paddle.distributed as dist
    lengths = []
    dist.all_gather(lengths, paddle.to_tensor([len(data)], dtype="int64"), group=group)
    sizes = [int(t.numpy()[0]) for t in lengths]
    buf = np.zeros(max(sizes), np.uint8)
    buf[:len(data)] = np.frombuffer(data, np.uint8)
    parts = []
    dist.all_gather(parts, paddle.to_tensor(buf), group=group)
    return [p.numpy()[:n].tobytes() for p, n in zip(parts, sizes)]


def broadcast_bytes(data: bytes | None, src: int, is_src: bool, group=None) -> bytes:
    """``data`` of rank ``src`` on every rank of ``group``."""
    import numpy as np
    import paddle
    import paddle.distributed as dist
    n = paddle.to_tensor([len(data) if is_src else 0], dtype="int64")
    dist.broadcast(n, src=src, group=group)
    size = int(n.numpy()[0])
    buf = paddle.to_tensor(np.frombuffer(data, np.uint8).copy() if is_src
                           else np.zeros(size, np.uint8))
    dist.broadcast(buf, src=src, group=group)
    return buf.numpy()[:size].tobytes()
