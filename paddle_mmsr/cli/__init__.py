"""Command lines: ``main(argv)`` of each is a console command (pyproject.toml); the
ones the README shows are also wrapped by ``tools/<name>.py``."""
import functools
import sys

PADDLE_HINT = ("error: this command needs PaddlePaddle, which is not installed; install it with "
               "`pip install paddlepaddle` (CPU) or the paddlepaddle-gpu build for your CUDA "
               "(https://www.paddlepaddle.org.cn/install/quick)")


def needs_paddle(main):
    """``main`` that answers a missing Paddle with one line (exit code 2), not a traceback."""
    @functools.wraps(main)
    def run(argv=None):
        try:
            return main(argv)
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] != "paddle":
                raise
            print(PADDLE_HINT, file=sys.stderr)
            return 2
    return run
