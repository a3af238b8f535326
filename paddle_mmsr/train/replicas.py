"""Several ranks training one class together (data parallel).

The ranks of a class form a ``paddle.distributed`` process group (made by
``new_group`` on every rank). Each step's batch is split between them:
replica ``k`` of ``n`` takes items ``k, k+n, k+2n, ...`` of it, so each rank
does about 1/n of the work. After each backward pass every replica weights
its gradients by its share of the batch and the group sums them
(``all_reduce``): every replica applies the update one rank would have made
on the whole batch, and the weights stay identical (batch norm statistics
are the exception: they stay per replica). The leader (replica 0) owns the class folder; the
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
    batch_size: int = 0  # the class's whole batch (0: equal shares)

    @property
    def share(self) -> float:
        """This replica's fraction of each batch."""
        if not self.batch_size:
            return 1.0 / self.size
        return len(range(self.index, self.batch_size, self.size)) / self.batch_size

    @property
    def leader(self) -> bool:
        return self.index == 0

    def average_gradients(self, opt) -> None:
        """Replace each gradient of ``opt``'s parameters by the whole batch's gradient:
        the sum over the group of each replica's gradient times its share."""
        import paddle
        import paddle.distributed as dist
        with paddle.no_grad():  # in place, on the device
            for p in opt._parameter_list:
                g = p.grad
                if g is not None:
                    g.scale_(self.share)
                    dist.all_reduce(g, group=self.group)

    def share_start(self, state):
        """Leader: send ``state`` (nested dict, tensors allowed) to the replicas;
        replicas: return the leader's state (numpy arrays in place of tensors)."""
        from paddle_mmsr.core.safe_files import state_from_bytes, state_to_bytes
        from paddle_mmsr.train.ranks import broadcast_bytes
        if self.leader:  # random states stay per rank
            state = {k: v for k, v in state.items() if k != "rng"}
        data = broadcast_bytes(state_to_bytes(_to_numpy(state)) if self.leader else None,
                               self.group.ranks[0], self.leader, self.group)
        return state_from_bytes(data)


def _to_numpy(x):
    if isinstance(x, dict):
        return {k: _to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_numpy(v) for v in x)
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        return x.numpy()
    return x
