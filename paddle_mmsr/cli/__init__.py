"""Command lines: ``main(argv)`` of each is a console command (pyproject.toml) and is
wrapped by ``tools/<name>.py``."""
