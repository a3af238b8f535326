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
    def __init__(self, batch_size: int, length: int, seed: int, start: int = 0):
        self.batch_size, self.length, self.seed, self.start = batch_size, length, seed, start

    def __iter__(self):
        b = self.start
        while True:
            yield batch_indices(b, self.batch_size, self.length, self.seed)
            b += 1

    def __len__(self):
        return ENDLESS


def batch_stream(dataset, batch_size: int, seed: int, start: int = 0, workers: int = 0):
    """Yield (lr, hr) float32 NCHW paddle tensors from batch ``start`` on."""
    import paddle
    items = EpochItems(dataset)
    if workers <= 0:  # in-process: no loader machinery, no extra copies
        b = start
        while True:
            pairs = [items[k] for k in batch_indices(b, batch_size, len(dataset), seed)]
            yield (paddle.to_tensor(np.stack([p[0] for p in pairs])),
                   paddle.to_tensor(np.stack([p[1] for p in pairs])))
            b += 1
    loader = paddle.io.DataLoader(items, batch_sampler=StreamSampler(batch_size, len(dataset),
                                                                      seed, start),
                                  num_workers=workers, return_list=True, prefetch_factor=4)
    on_gpu = paddle.get_device().startswith("gpu")
    for lr, hr in loader:
        if on_gpu and not lr.place.is_gpu_place():
            lr, hr = lr.cuda(), hr.cuda()
        yield lr, hr
