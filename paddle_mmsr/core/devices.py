"""Device and backend names, shared by reconstruction, training and the commands."""
from __future__ import annotations

__all__ = ["BACKENDS", "DEVICES", "TRAIN_DEVICES", "parse_device"]

BACKENDS = ("auto", "inference", "dygraph")  # how a class network runs (sr/inference.py)
DEVICES = ("cpu", "gpu")                     # where it runs; "gpu:N" picks the N-th card
TRAIN_DEVICES = ("auto",) + DEVICES          # training: auto = gpu when Paddle sees one


def parse_device(device: str) -> tuple:
    """("cpu", None) for "cpu"; ("gpu", N) for "gpu:N" ("gpu" = "gpu:0")."""
    if device == "cpu":
        return "cpu", None
    if device == "gpu":
        return "gpu", 0
    if device.startswith("gpu:") and device[4:].isdigit():
        return "gpu", int(device[4:])
    raise ValueError(f"device must be cpu, gpu or gpu:N, got {device!r}")
