"""Several ranks training one class together (data parallel).

The ranks of a class form a ``paddle.distributed`` process group (made by
``new_group`` on every rank). Replica ``k`` of ``n`` draws batches ``k, k+n,
k+2n, ...`` of the class's batch stream, so together they see ``n`` times the
batch per step; after each backward pass the gradients are averaged over the
group (``all_reduce``), so every replica applies the same update and the
weights stay identical. The leader (replica 0) owns the class folder; the
other replicas write their logs and checkpoints under
``class<i>/replica<k>/`` and start from the leader's state, sent to them when
the class starts (so a resumed leader brings its replicas along, on any node).

``paddle.DataParallel`` does the same averaging, but in Paddle 3.3 its
constructor broadcasts the weights over the *global* group from rank 0, which
hangs when the class's group is a subset of the ranks; hence the explicit
all_reduce here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Replica:
    group: object     # paddle.distributed Group of the class's ranks
    index: int        # 0 = leader
    size: int

    @property
    def leader(self) -> bool:
        return self.index == 0

    def average_gradients(self, opt) -> None:
        """Replace each gradient of ``opt``'s parameters by its mean over the group."""
        import paddle
        import paddle.distributed as dist
        with paddle.no_grad():  # in place, on the device
            for p in opt._parameter_list:
                g = p.grad
                if g is not None:
                    dist.all_reduce(g, group=self.group)
                    g.scale_(1.0 / self.size)

    def share_start(self, state):
        """Leader: send ``state`` (nested dict, tensors allowed) to the replicas;
        replicas: return the leader's state (numpy arrays in place of tensors)."""
        import paddle.distributed as dist
        if self.leader:  # random states stay per rank
            state = {k: v for k, v in state.items() if k != "rng"}
        box = [_to_numpy(state) if self.leader else None]
        dist.broadcast_object_list(box, src=self.group.ranks[0], group=self.group)
        return box[0]


def _to_numpy(x):
    if isinstance(x, dict):
        return {k: _to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_numpy(v) for v in x)
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        return x.numpy()
    return x
