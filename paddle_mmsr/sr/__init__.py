"""Reconstruction flow: bundle -> tiles -> TVAT -> route -> run (``inference``) -> stitch; the ``MMSR`` API in ``reconstruct``."""
