"""Training engine: one two-phase SRGAN run per TVAT class, classes placed on
ranks of ``paddle.distributed.launch``. Entry point: ``tools/train.py``.

Modules: ``placement`` (classes -> ranks by cost, device), ``batches`` (resumable
batch stream), ``builders`` (networks, optimisers, VGG), ``steps`` (one
step of each phase), ``loop`` (one class's run, a ``ClassTrainer``),
``checkpoint``, ``monitor`` (log file, VisualDL, tqdm), ``validate``,
``ranks`` (how the ranks meet: paddle.distributed store and collectives),
``replicas`` (several ranks on one class, data parallel), ``finalize`` (bundle, routed validation,
summary.json), ``run`` (a whole rank's work; ``assemble_results`` at the end).
"""
