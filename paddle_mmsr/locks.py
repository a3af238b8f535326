"""One writer per output: an advisory lock (``fcntl.flock``) on a file beside
or inside the output, held for as long as a run writes it.

A second run asking for the same lock stops at once with ``Busy``, naming the
process that holds it (pid, host, start time: written into the lock file).
The file is removed on release; a run that finds the file replaced after
locking it (a release in between) locks again, so two runs never both hold it.
On systems without ``fcntl`` (Windows) the lock is a no-op.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["Busy", "OutputLock"]


class Busy(RuntimeError):
    """Another process holds the output's lock."""


class OutputLock:
    """``with OutputLock(path, "training output X"):`` ... (``path``: the lock file)."""

    def __init__(self, path, what: str, hint: str = ""):
        self.path, self.what, self.hint = Path(path), what, hint
        self._fd = None

    def acquire(self) -> "OutputLock":
        if fcntl is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 300).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise Busy(f"{self.what} is in use by {holder} (lock {self.path}); "
                           + (self.hint or "wait for it to finish or write elsewhere")) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                             f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
                self._fd = fd
                return self
            os.close(fd)  # released and removed meanwhile: lock the new file
        raise Busy(f"{self.what}: could not take the lock {self.path}")

    def release(self) -> None:
        if self._fd is not None:
            try:
                self.path.unlink()
            except OSError:
                pass
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
