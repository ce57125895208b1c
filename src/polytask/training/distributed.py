"""Data-parallel training over several processes launched by ``torchrun``.

torchrun starts one process (a *rank*) per GPU, or per CPU slot, and tells each its place through
the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``).
:func:`process_group` reads it and joins the ranks through ``torch.distributed`` (``nccl`` on
CUDA, each rank on ``cuda:LOCAL_RANK``; ``gloo`` on CPU). Without torchrun, or with one process,
it gives :class:`SingleProcess`, whose collectives do nothing, and training is the plain loop.

How the ranks divide the work (the trainer does it; this module gives it the collectives):

* **One schedule.** Every rank builds the task schedule from the same seed, so every rank draws
  the same task at every step (no rank waits on a graph the others lack).
* **One global batch, cut in ranks.** Every rank's batch iterator plans the same global batches of
  ``data.batch_size × world_size`` examples (the plan a one-process run with that batch size
  makes) and keeps every ``world_size``-th example, from its rank on. ``data.batch_size`` is the
  batch of one rank.
* **Gradients averaged by hand, not by ``DistributedDataParallel``.** DDP reduces gradients from
  hooks that fire as ``backward`` fills them; here a step touches only the heads of its task, the
  gradient methods differentiate with ``torch.autograd.grad`` (no hooks fire), and gradient
  accumulation would need ``no_sync``. Instead, after the step's backward passes, the gradients
  are averaged with ``all_reduce`` (:meth:`TorchDistributed.average_gradients`): in the fixed order
  of the trainer's parameter list, only the parameters that have a gradient on some rank (a
  parameter no rank used keeps no gradient, so Adam leaves it alone, as in one process), flattened
  into buckets. Each rank scales its losses by ``world_size × (its examples / the global batch's)``,
  so the average is the gradient of the global batch's mean loss even when the last batch of an
  epoch does not divide evenly (a rank left without an example runs one with weight 0).
* **Rank 0 writes.** Checkpoints, ``best/``, ``metrics.jsonl``, TensorBoard, results and the
  progress bar belong to rank 0; it evaluates on dev alone while the others wait, then sends them
  what the evaluation decided (stop, finished tasks). Every checkpoint gathers each rank's random
  state into ``last/trainer.pt``, so a resume (with the same world size) is exact.
"""
from __future__ import annotations

import datetime
import os
from typing import Any, Optional, Sequence

import torch

from ..config import ConfigError

# weightings whose state or weights come from each rank's own loss values or gradient norms
UNSUPPORTED_WEIGHTINGS = {
    "dwa": "its weights come from each process's own loss averages, which differ between processes",
    "gradnorm": "its task weights are fitted to each process's own gradient norms and loss ratios, "
                "which differ between processes",
}

BUCKET_ELEMENTS = 1 << 22          # gradients all-reduced 4M elements (16 MB in fp32) at a time
TIMEOUT = datetime.timedelta(minutes=60)   # rank 0 evaluates dev alone while the others wait


def launched_world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


class SingleProcess:
    """The one process of a run that torchrun did not start: rank 0 of 1; collectives do nothing."""

    rank, world_size, local_rank = 0, 1, 0
    distributed = False

    def __init__(self, device: Optional[torch.device] = None):
        self.device = device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        pass

    def broadcast_object(self, obj: Any) -> Any:
        return obj

    def gather_objects(self, obj: Any) -> list:
        return [obj]

    def broadcast_tensors(self, tensors: Sequence[torch.Tensor]) -> None:
        pass

    def average(self, tensors: Sequence[torch.Tensor]) -> None:
        pass

    def reduce_step(self, values: dict[str, float], tokens: int, stop: bool) -> tuple[dict[str, float], int, bool]:
        return values, tokens, stop

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        pass

    def check_same_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    def close(self) -> None:
        pass


class TorchDistributed(SingleProcess):
    """One rank of a torchrun job, joined to the others through ``torch.distributed``."""

    distributed = True

    def __init__(self, device: torch.device):
        import torch.distributed as dist
        self.dist = dist
        self.rank, self.world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        super().__init__(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=TIMEOUT,
                                    **({"device_id": device} if device.type == "cuda" else {}))

    def barrier(self) -> None:
        self.dist.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order (on every rank)."""
        out: list = [None] * self.world_size
        self.dist.all_gather_object(out, obj)
        return out

    def broadcast_tensors(self, tensors: Sequence[torch.Tensor]) -> None:
        """Overwrite ``tensors`` with rank 0's, in place."""
        for tensor in tensors:
            self.dist.broadcast(tensor.data, src=0)

    def average(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace each tensor with its mean over the ranks, in place (same shapes on every rank)."""
        for bucket in _buckets(list(tensors)):
            flat = torch.cat([t.reshape(-1) for t in bucket])
            self.dist.all_reduce(flat)
            flat /= self.world_size
            offset = 0
            for t in bucket:
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()

    def reduce_step(self, values: dict[str, float], tokens: int, stop: bool) -> tuple[dict[str, float], int, bool]:
        """One small all-reduce per draw: the tasks' losses averaged (each rank's loss already
        carries its share of the global batch, so this is the global batch's mean loss, and a
        NaN on any rank is a NaN on every rank), the tokens summed, and whether any rank was
        asked to stop (SIGINT/SIGTERM), so that every rank stops at the end of the same step."""
        tasks = list(values)
        packed = torch.tensor([values[t] for t in tasks] + [float(tokens), float(stop)], dtype=torch.float64,
                              device=self.device)
        self.dist.all_reduce(packed)
        reduced = packed.tolist()
        return ({t: v / self.world_size for t, v in zip(tasks, reduced)}, int(reduced[-2]), reduced[-1] > 0)

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Average ``.grad`` over the ranks for the parameters that have a gradient on at least one
        rank (a rank that lacks one contributes zeros); a parameter that no rank used keeps none.
        Every rank passes the same list, so the buckets line up."""
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=self.device)
        self.dist.all_reduce(has)
        used = [p for p, n in zip(params, has.tolist()) if n > 0]
        for p in used:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.average([p.grad for p in used])

    def check_same_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """Raise when the ranks' weights differ (they never should: same start, same averaged
        gradients); a float64 sum and sum of squares per tensor, compared with rank 0's."""
        names = sorted(tensors)
        mine = torch.tensor([[tensors[n].double().sum().item(), tensors[n].double().pow(2).sum().item()]
                             for n in names], dtype=torch.float64)
        first = mine.clone().to(self.device)
        self.dist.broadcast(first, src=0)
        differ = [n for n, a, b in zip(names, mine.tolist(), first.cpu().tolist()) if a != b]
        flag = torch.tensor([float(bool(differ))], device=self.device)
        self.dist.all_reduce(flag)
        if flag.item() > 0:
            raise RuntimeError(f"rank {self.rank}: the processes' weights have drifted apart"
                               + (f" ({', '.join(differ[:3])})" if differ else "")
                               + "; this is a polytask bug, please report it")

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


def _buckets(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Consecutive runs of tensors of one dtype and device, each up to :data:`BUCKET_ELEMENTS`."""
    buckets: list[list[torch.Tensor]] = []
    size = 0
    for t in tensors:
        last = buckets[-1] if buckets else None
        if last is None or size + t.numel() > BUCKET_ELEMENTS or (last[0].dtype, last[0].device) != (t.dtype, t.device):
            buckets.append([t])
            size = t.numel()
        else:
            last.append(t)
            size += t.numel()
    return buckets


def refuse_unsupported(cfg, world_size: int) -> None:
    """Refuse, before anything is built, what cannot train over ``world_size`` processes."""
    if world_size <= 1:
        return
    name = cfg.trainer.weighting
    if name in UNSUPPORTED_WEIGHTINGS:
        raise ConfigError(f"trainer.weighting: {name!r} cannot train under torchrun ({world_size} processes): "
                          f"{UNSUPPORTED_WEIGHTINGS[name]}. Use equal, fixed, uncertainty, rlw or a TorchJD "
                          "aggregator (upgrad, mgda, pcgrad, imtlg, cagrad, nashmtl: their per-task gradients "
                          "are averaged over the processes), or train in one process")
    for i, task in enumerate(cfg.tasks):
        # each rank's loss is weighed by its share of the global batch's examples; a per-token softmax
        # averages over tokens, whose count differs between the ranks' parts, so the averaged gradient
        # would not be the global batch's
        if task.type == "tagging" and task.tagging_head == "softmax":
            raise ConfigError(f"tasks[{i}].tagging_head: 'softmax' ({task.name}) cannot train under torchrun "
                              f"({world_size} processes) yet: its loss is a mean over tokens, not over sentences. "
                              "Use tagging_head: crf (a mean over sentences), or train in one process")


def process_group(device: torch.device) -> SingleProcess:
    """This process's place: :class:`TorchDistributed` under torchrun with more than one process
    (joined now), else :class:`SingleProcess`."""
    if launched_world_size() <= 1:
        return SingleProcess(device)
    return TorchDistributed(device)
