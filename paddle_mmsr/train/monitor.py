"""What a class run reports: a plain log file, VisualDL scalars/images/
histograms (one run folder per class) and a tqdm bar.

The bar is drawn on a terminal only. Console log lines go through
``tqdm.write`` there, so they land on their own line above the bar; in a
file, a notebook cell or a launcher's worker log there is no bar (carriage
returns would glue the next line onto it) and the step lines carry the
progress and the time left instead."""
from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
from pathlib import Path

import numpy as np


class _AboveBar(logging.StreamHandler):
    """Console lines written with ``tqdm.write``: the bar is cleared and redrawn below."""

    def emit(self, record):
        from tqdm import tqdm
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:
            self.handleError(record)


def class_logger(name: str, log_file, console: bool = True,
                 above_bar: bool = False) -> logging.Logger:
    logger = logging.getLogger(f"paddle_mmsr.train.{name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter(f"%(asctime)s [{name}] %(message)s", "%Y-%m-%d %H:%M:%S")
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(log_file)
    fh.setFormatter(fmt)
    logger.addHandler(fh)
    if console:
        sh = (_AboveBar if above_bar else logging.StreamHandler)(sys.stdout)
        sh.setFormatter(fmt)
        logger.addHandler(sh)
    return logger


class Monitor:
    def __init__(self, name: str, log_file, vdl_dir, total: int, start: int,
                 progress: bool = True, console: bool = True):
        from visualdl import LogWriter
        bar = progress and console and sys.stderr.isatty()
        self.log = class_logger(name, log_file, console, above_bar=bar)
        # VisualDL shows one file per run folder: a resumed run appends to it
        earlier = sorted(Path(vdl_dir).glob("vdlrecords.*.log")) if start > 0 else []
        with contextlib.redirect_stdout(io.StringIO()):  # its "will add logs to it" notice
            self.writer = LogWriter(logdir=str(vdl_dir),
                                    file_name=earlier[-1].name if earlier else "")
        self.bar, self.total = None, total
        if bar:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, desc=name, unit="it", dynamic_ncols=True,
                            mininterval=0.5, file=sys.stderr)
        self._last = (time.perf_counter(), start)

    def info(self, msg: str) -> None:
        self.log.info(msg)

    def eta(self, step: int, rate: float) -> str:
        """'step/total, time left' for log lines (the bar shows it on a terminal)."""
        left = (self.total - step) / rate if rate > 0 else 0.0
        m, sec = divmod(int(round(left)), 60)
        h, m = divmod(m, 60)
        return f"{step}/{self.total}, {h}:{m:02d}:{sec:02d} left"

    def scalars(self, step: int, values: dict, prefix: str = "") -> None:
        for k, v in values.items():
            self.writer.add_scalar(f"{prefix}{k}", float(v), step)

    def images(self, step: int, tag: str, img: np.ndarray) -> None:
        self.writer.add_image(tag, img, step, dataformats="HWC")

    def histograms(self, step: int, layer, prefix: str = "weights/") -> None:
        for name, p in layer.named_parameters():
            if p.ndim > 1:  # conv / dense weights only
                self.writer.add_histogram(prefix + name, p.numpy().ravel(), step, buckets=30)

    def advance(self, step: int, postfix: dict) -> float:
        """Move the bar to ``step``; returns iterations/s since the last call."""
        now, (t0, s0) = time.perf_counter(), self._last
        rate = (step - s0) / max(now - t0, 1e-9)
        self._last = (now, step)
        if self.bar is not None:
            self.bar.set_postfix({**postfix, "it/s": f"{rate:.3g}"}, refresh=False)
            self.bar.update(step - self.bar.n)
        return rate

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.writer.close()
        for h in list(self.log.handlers):
            self.log.removeHandler(h)
            h.close()

