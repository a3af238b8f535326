"""Train MMSR class models (or a single SRGAN) from a YAML config.

    python tools/train.py -c configs/mmsr_x4.yaml [-o key.path=value ...]
    python -m paddle.distributed.launch --devices 0,1,2 tools/train.py -c configs/mmsr_x4.yaml
    python -m paddle.distributed.launch --nproc_per_node 3 tools/train.py -c configs/mmsr_x4_cpu.yaml

Under the launcher, classes go to ranks by estimated cost (spare ranks become
data-parallel replicas of the costliest classes); on CPU use --nproc_per_node N.
A run continues from the output folder's latest checkpoints by default.
"""
import argparse
import os
import sys
import warnings
from pathlib import Path

# Paddle's C++ INFO lines (store connections) say nothing a user can act on; its
# warnings and errors stay
os.environ.setdefault("GLOG_minloglevel", "1")

from paddle_mmsr.cli import needs_paddle  # noqa: E402
from paddle_mmsr.config import ConfigError, load_config  # noqa: E402


@needs_paddle
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="mmsr-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config (see configs/)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. -o train.pretrain_iters=500 "
                        "-o classes.0.spec=8-6 (repeatable)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true",
                   help="require a checkpoint to continue from (default: continue if present)")
    g.add_argument("--fresh", action="store_true",
                   help="ignore existing checkpoints and start at step 0 (overwrites them)")
    g.add_argument("--assemble", action="store_true",
                   help="only assemble the bundle and summary.json from finished classes")
    p.add_argument("--check", action="store_true",
                   help="validate the config and the paths it names (data, split, val), and exit")
    a = p.parse_args(argv)
    # Paddle's BatchNorm warns on every training forward that it tracks running statistics
    warnings.filterwarnings("ignore", message="When training, we now always track global mean")
    try:
        cfg = load_config(a.config, a.override)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from paddle_mmsr.train.run import assemble_results, resolve_jobs, run_training
    if a.check:  # the config, and every path it names
        from paddle_mmsr.train.preflight import check_inputs
        try:
            jobs, _, split = resolve_jobs(cfg)
            counts = check_inputs(cfg, jobs, split)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"{a.config}: OK ({len(cfg.classes)} classes, training images per class "
              f"{list(counts.values())} -> {cfg.output_dir})")
        return 0
    if a.assemble:
        jobs, tvat, split = resolve_jobs(cfg)
        res = assemble_results(cfg, jobs, tvat, split)
        return 0 if res["bundle"] else 1
    resume = "require" if a.resume else "fresh" if a.fresh else "auto"
    from paddle_mmsr.locks import Busy
    try:
        return run_training(cfg, resume=resume, log=lambda m: print(m, flush=True))
    except Busy as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, RuntimeError) as e:  # setup problems
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. a read-only output folder, or a file in its place
        print(f"error: cannot write {e.filename or cfg.output_dir}: {e.strerror or e}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
