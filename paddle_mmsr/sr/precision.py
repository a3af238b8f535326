"""Which number format the class networks run in: ``fp32``, or ``bf16`` where the
hardware computes it natively.

``auto`` picks bf16 on a CPU whose flags (``/proc/cpuinfo``) include
``avx512_bf16`` or ``amx_bf16`` (Intel Cooper Lake, Sapphire Rapids and later; AMD
Zen 4 and later), or on a GPU that Paddle says supports bfloat16; fp32 elsewhere.
It also needs the bundle's measured cost: ``bf16_psnr_cost`` in the manifest (dB of
PSNR lost against fp32). A bundle without the figure, or with more than
``MAX_BF16_COST_DB``, runs fp32 under ``auto``; ``bf16`` asked for by name runs
bf16 whatever the figure (it is the user's choice), but only on hardware that has
it: elsewhere Paddle would silently run fp32, so it is refused.

On the CPU bf16 is oneDNN's (``Config.enable_mkldnn_bfloat16``); the exported
program is the same for both precisions, the conversion happens when the
predictor is built.
"""
from __future__ import annotations

from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")
MAX_BF16_COST_DB = 0.01   # auto refuses bf16 for a bundle losing more PSNR than this
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo=None) -> frozenset:
    """The CPU's feature flags (``cpuinfo``, default Linux's ``CPUINFO``); empty where
    not readable (then ``auto`` means fp32)."""
    try:
        text = Path(cpuinfo or CPUINFO).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_has_bf16(flags=None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_CPU_FLAGS)


def gpu_has_bf16(index: int) -> bool:
    import paddle
    try:
        return bool(paddle.amp.is_bfloat16_supported(paddle.CUDAPlace(index)))
    except Exception:  # an old Paddle without the check, or no such card
        return False


def choose_precision(requested: str, device: str = "cpu", bf16_cost=None,
                     has_bf16=None) -> tuple:
    """(``"fp32"`` or ``"bf16"``, why). ``bf16_cost``: the bundle's ``bf16_psnr_cost``;
    ``has_bf16``: whether the device computes bf16 (default: ask the CPU or Paddle).
    Raises ValueError for an unknown name or bf16 forced where the hardware lacks it."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested == "fp32":
        return "fp32", "asked for"
    if has_bf16 is None:
        from paddle_mmsr.core.devices import parse_device
        kind, index = parse_device(device)
        has_bf16 = gpu_has_bf16(index) if kind == "gpu" else cpu_has_bf16()
    where = "this GPU" if device.startswith("gpu") else "this CPU"
    if requested == "bf16":
        if not has_bf16:
            raise ValueError(f"--precision bf16: {where} does not compute bfloat16 natively "
                             f"(needs one of {', '.join(BF16_CPU_FLAGS)} on a CPU); Paddle "
                             "would run fp32 anyway. Use --precision auto or fp32")
        return "bf16", "asked for"
    if not has_bf16:
        return "fp32", f"{where} has no native bfloat16"
    if bf16_cost is None:
        return "fp32", "the bundle records no bf16_psnr_cost (bf16 untested on it)"
    if float(bf16_cost) > MAX_BF16_COST_DB:
        return "fp32", (f"bf16 costs this bundle {float(bf16_cost):.3f} dB PSNR "
                        f"(> {MAX_BF16_COST_DB} dB)")
    return "bf16", f"{where} has native bfloat16; the bundle loses {float(bf16_cost):.3f} dB"
