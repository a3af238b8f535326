"""Command lines: ``main(argv)`` of each is a console command (pyproject.toml); the
ones the README shows are also wrapped by ``tools/<name>.py``."""
