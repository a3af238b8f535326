"""Endless, resumable stream of training batches.

Batch ``b`` is a pure function of (seed, b): it takes the flat positions
``b*B .. b*B+B-1`` of an endless sequence of per-epoch permutations of the
dataset, and item ``i`` of epoch ``e`` is cropped and augmented from
(seed, e, i) (see ``SRDataset.set_epoch``). Restarting at batch ``b`` after a
resume therefore gives the same batches as an uninterrupted run.
"""
from __future__ import annotations

import numpy as np

try:
    from paddle.io import BatchSampler, Dataset
except ImportError:  # numpy-only use
    BatchSampler = Dataset = object

ENDLESS = 2 ** 62


def batch_indices(batch: int, batch_size: int, length: int, seed: int) -> list[int]:
    """Flat item indices ``epoch * length + i`` of batch number ``batch``."""
    out, perms = [], {}
    for p in range(batch * batch_size, (batch + 1) * batch_size):
        epoch, pos = divmod(p, length)
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([seed, epoch, 0x5EED]).permutation(length)
        out.append(epoch * length + int(perms[epoch][pos]))
    return out


class EpochItems(Dataset):
    """Index ``epoch * len + i`` -> item i of ``dataset`` at that epoch."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return ENDLESS

    def __getitem__(self, k):
        epoch, i = divmod(int(k), len(self.dataset))
        self.dataset.set_epoch(epoch)
        return self.dataset[i]


class StreamSampler(BatchSampler):
    def __init__(self, batch_size: int, length: int, seed: int, start: int = 0, shard=(0, 1)):
        self.batch_size, self.length, self.seed, self.start = batch_size, length, seed, start
        self.shard = shard

    def __iter__(self):
        b = self.start
        k, n = self.shard
        while True:
            yield batch_indices(b, self.batch_size, self.length, self.seed)[k::n]
            b += 1

    def __len__(self):
        return ENDLESS


def shm_plan(workers: int, batch_bytes: int, shm_free: int | None, prefetch: int = 4) -> tuple:
    """(prefetch factor, use shared memory, note or None) for the DataLoader.

    The workers keep about ``workers * prefetch`` batches in /dev/shm (64 MB in
    many containers); the prefetch is lowered to fit in half of what is free,
    and shared memory is left out when not even one batch per worker fits."""
    if shm_free is None:
        return prefetch, True, None
    per_prefetch = workers * batch_bytes
    fits = int(shm_free // 2 // max(per_prefetch, 1))
    if fits >= prefetch:
        return prefetch, True, None
    mb = lambda b: f"{b / 2 ** 20:.0f} MB"  # noqa: E731
    if fits >= 1:
        return fits, True, (f"/dev/shm has {mb(shm_free)} free: DataLoader prefetch lowered "
                            f"from {prefetch} to {fits} ({workers} workers x {mb(batch_bytes)} "
                            "per batch)")
    return 2, False, (f"/dev/shm has {mb(shm_free)} free, too little for {workers} workers x "
                      f"{mb(batch_bytes)} per batch: the DataLoader runs without shared memory "
                      "(slower; give the container a larger --shm-size, or data.workers: 0)")


def _shm_free():
    import os
    try:
        st = os.statvfs("/dev/shm")
        return st.f_bavail * st.f_frsize
    except OSError:
        return None


def batch_stream(dataset, batch_size: int, seed: int, start: int = 0, workers: int = 0,
                 shard=(0, 1), log=None):
    """Yield (lr, hr) float32 NCHW paddle tensors from batch ``start`` on.

    ``shard=(k, n)``: replica k of n gets items ``k, k+n, ...`` of each batch.
    On CPU with ``workers: 0`` the batches are made in the training process;
    otherwise a ``paddle.io.DataLoader`` makes them (in worker processes, or,
    with ``workers: 0`` on a GPU, in its buffer thread, which also copies them
    to the device, so the step does not wait for the host-to-device copy)."""
    import paddle
    if workers <= 0 and not paddle.get_device().startswith("gpu"):
        return _inline_stream(dataset, batch_size, seed, start, shard)
    return _loader_stream(dataset, batch_size, seed, start, shard, workers, log)


def _inline_stream(dataset, batch_size, seed, start, shard):
    import paddle
    items, (k, n), b = EpochItems(dataset), shard, start
    while True:
        pairs = [items[i] for i in batch_indices(b, batch_size, len(dataset), seed)[k::n]]
        yield (paddle.to_tensor(np.stack([p[0] for p in pairs])),
               paddle.to_tensor(np.stack([p[1] for p in pairs])))
        b += 1


def _loader_stream(dataset, batch_size, seed, start, shard, workers, log=None):
    import paddle
    prefetch, use_shm, note = 2, True, None
    if workers > 0:
        lr0, hr0 = dataset[0]
        prefetch, use_shm, note = shm_plan(workers, batch_size * (lr0.nbytes + hr0.nbytes),
                                           _shm_free())
    if note and log:
        log(note)
    sampler = StreamSampler(batch_size, len(dataset), seed, start, shard)
    loader = paddle.io.DataLoader(EpochItems(dataset), batch_sampler=sampler,
                                  num_workers=workers, return_list=True, use_buffer_reader=True,
                                  prefetch_factor=prefetch, use_shared_memory=use_shm)
    device = paddle.get_device()
    gpu = int(device.split(":")[1]) if device.startswith("gpu:") else None
    for lr, hr in loader:
        if gpu is not None and not lr.place.is_gpu_place():
            lr, hr = lr.cuda(gpu), hr.cuda(gpu)
        yield lr, hr


def warm_then(stream, warm, warm_batches: int, dataset, start: int = 0):
    """Batches ``start`` on of: ``warm_batches`` batches of ``warm``, then ``dataset``'s
    from its batch 0. ``stream(data, first)`` makes one dataset's batches."""
    if warm is not None and start < warm_batches:
        for _, batch in zip(range(warm_batches - start), stream(warm, start)):
            yield batch
        start = warm_batches
    yield from stream(dataset, start - (warm_batches if warm is not None else 0))
