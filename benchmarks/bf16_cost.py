"""What bf16 costs a bundle in PSNR: the ``bf16_psnr_cost`` that ``--precision auto``
reads from the manifest (paddle_mmsr/sr/precision.py).

    python benchmarks/bf16_cost.py BUNDLE [BUNDLE ...] --images HR_DIR [--limit 20]
                                   [--mode native|emulated] [--write]

PSNR-Y of the x4 upscale of each HR image's bicubic LR, fp32 against bf16; the
cost is the mean fp32 PSNR minus the mean bf16 PSNR (dB; negative: bf16 did better).

- ``native`` (on a CPU with AVX512-BF16 or AMX): Paddle Inference with
  ``enable_mkldnn_bfloat16``, the path ``--precision bf16`` runs;
- ``emulated`` (any CPU): the dygraph networks with every convolution's weights,
  input and output rounded to bfloat16 (sums in fp32, as oneDNN's bf16
  convolutions do). An estimate of the native figure, labelled as such.

``--write`` records the figure in each manifest (``bf16_psnr_cost``) and says how
it was measured on stdout; copy that line into the model card.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def emulate_bf16(layer) -> None:
    """Round each Conv2D's weights (now) and its input and output (every call) to bf16."""
    import paddle

    def rnd(t):
        return t.astype("bfloat16").astype("float32")

    for m in layer.sublayers(include_self=True):
        if isinstance(m, paddle.nn.Conv2D):
            m.weight.set_value(rnd(m.weight))
            if m.bias is not None:
                m.bias.set_value(rnd(m.bias))
            m.register_forward_pre_hook(lambda mod, inputs: tuple(rnd(x) for x in inputs))
            m.register_forward_post_hook(lambda mod, inputs, out: rnd(out))


def models(bundle: Path, mode: str):
    from paddle_mmsr import MMSR
    if mode == "native":
        return (MMSR.load(bundle, precision="fp32"), MMSR.load(bundle, precision="bf16"))
    fp32, bf16 = MMSR.load(bundle, backend="dygraph"), MMSR.load(bundle, backend="dygraph")
    for c in bf16.bundle.classes:
        emulate_bf16(bf16.runner(c.id).layer)
    return fp32, bf16


def cost(bundle: Path, images: list, mode: str) -> dict:
    from paddle_mmsr.image.io import read_image, to_rgb8
    from paddle_mmsr.metrics.evaluate import pair_from_hr
    from paddle_mmsr.metrics.psnr_ssim import psnr
    fp32, bf16 = models(bundle, mode)
    a, b = [], []
    for p in images:
        hr, lr = pair_from_hr(to_rgb8(read_image(p)), fp32.scale, p.name)
        a.append(psnr(fp32.upscale(lr), hr, fp32.scale))
        b.append(psnr(bf16.upscale(lr), hr, fp32.scale))
    return {"fp32_psnr": float(np.mean(a)), "bf16_psnr": float(np.mean(b)),
            "cost_db": float(np.mean(a) - np.mean(b)), "images": len(images)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--images", required=True, type=Path, help="folder of HR images")
    ap.add_argument("--limit", type=int, default=20, help="first N images (sorted)")
    ap.add_argument("--mode", choices=("native", "emulated"), default="native")
    ap.add_argument("--write", action="store_true", help="record bf16_psnr_cost in the manifests")
    args = ap.parse_args(argv)
    from paddle_mmsr.image.io import list_images
    from paddle_mmsr.core.manifest import load_bundle, write_manifest
    from paddle_mmsr.sr.precision import cpu_has_bf16
    if args.mode == "native" and not cpu_has_bf16():
        print("error: this CPU has no native bf16 (avx512_bf16 / amx_bf16); use --mode "
              "emulated for an estimate", file=sys.stderr)
        return 2
    images = list_images(args.images)[:args.limit]
    for bundle in args.bundles:
        r = cost(bundle, images, args.mode)
        print(f"{bundle.name}: bf16_psnr_cost {r['cost_db']:.4f} dB ({args.mode}; PSNR-Y x4 "
              f"fp32 {r['fp32_psnr']:.3f}, bf16 {r['bf16_psnr']:.3f} on the first "
              f"{r['images']} images of {args.images.name})")
        if args.write:
            b = load_bundle(bundle)
            b.bf16_psnr_cost = round(max(r["cost_db"], 0.0), 4)
            write_manifest(b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
