"""Training flow, data side: TVAT score (``tvat``), HR -> LR sub-images sorted into classes (``split``), class manifests (``manifest``), the Paddle dataset (``dataset``)."""
