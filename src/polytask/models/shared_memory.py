"""Deep multi-task learning with shared memory: ME-LSTM, ARC-I and ARC-II.

Liu, Qiu, Huang, EMNLP 2016, "Deep Multi-Task Learning with Shared Memory" (§2-3).

Memory-enhanced LSTM (ME-LSTM). An LSTM whose cell reads from and writes to an external memory
M ∈ R^{K×M} (K slots of width M), reset for every sequence (to a learned M_0):

    α_t = softmax_j(β · cos(M_{t-1,j}, k_{t-1}))             read weights from the last key
    r_t = Σ_j α_{t,j} M_{t-1,j}                               read vector
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ ĉ_t                           the usual LSTM cell
    g_t = σ(W_g c_t + U_g r_t)                                deep-fusion gate
    h_t = o_t ⊙ tanh(c_t + g_t ⊙ (W_f r_t))                   internal and external memory fused
    k_t = tanh(W_k h_t), e_t = σ(W_e h_t), a_t = tanh(W_a h_t) key, erase and add vectors
    M_t = M_{t-1} ⊙ (1 - α_t e_tᵀ) + α_t a_tᵀ                 erase, then add

ARC-I (global shared memory): each task has its own ME-LSTM; all tasks read and write one memory
whose parameters (M_0, key/erase/add projections, β) are shared. ARC-II (local-global): each task
also has a local memory of its own; the cell fuses both read vectors with two fusion gates. The
fusion gates are given in ``inspect`` ("fusion_global" for ARC-I and ARC-II, "fusion_local" for
ME-LSTM and ARC-II, each (B, T, H)) so a user can see how much each step drew from each memory.
Padding steps leave every state and the memory unchanged. The time loop is a fast kernel,
:func:`polytask.ops.memory_lstm_recurrence` (backward through time written out);
:meth:`MemoryLSTM.forward_reference` is the step as the equations above read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..modules import Pooling
from ..modules.embeddings import build_embedding
from ..ops import memory_lstm_recurrence
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head


@dataclass
class SharedMemoryConfig(ModelConfig):
    """K memory slots of width M (Liu et al. 2016: (50, 20)) and the initial β of the cosine
    addressing. ``encoder.hidden_dim`` is each task's memory-enhanced LSTM."""

    encoders: ClassVar[tuple[str, ...]] = ("lstm", "bilstm")
    limits: ClassVar[dict[str, str]] = {"memory_slots": ">= 1", "memory_width": ">= 1", "memory_sharpness": "> 0"}

    memory_slots: int = 50
    memory_width: int = 20
    memory_sharpness: float = 1.0


def memory_read(memory: torch.Tensor, key: torch.Tensor, sharpness: torch.Tensor):
    """Content addressing. memory (B, K, M), key (B, M) -> weights α (B, K), read vector (B, M)."""
    sim = F.cosine_similarity(memory, key[:, None, :], dim=-1, eps=1e-8)   # (B, K)
    alpha = torch.softmax(sharpness * sim, dim=-1)
    return alpha, torch.einsum("bk,bkm->bm", alpha, memory)


def memory_write(memory: torch.Tensor, alpha: torch.Tensor, erase: torch.Tensor,
                 add: torch.Tensor) -> torch.Tensor:
    """Erase then add: M ⊙ (1 - α eᵀ) + α aᵀ. memory (B, K, M), alpha (B, K), erase/add (B, M)."""
    return memory * (1 - alpha[:, :, None] * erase[:, None, :]) + alpha[:, :, None] * add[:, None, :]


class ExternalMemory(nn.Module):
    """A memory's own parameters: initial content M_0, key/erase/add projections from h, sharpness β."""

    def __init__(self, hidden_dim: int, slots: int, width: int, sharpness: float = 1.0):
        super().__init__()
        self.initial = nn.Parameter(torch.randn(slots, width) * 0.1)
        self.kea = nn.Linear(hidden_dim, 3 * width)          # key, erase, add in one product
        self.sharpness = nn.Parameter(torch.tensor(float(sharpness)))
        self.width = width

    def start(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(memory (B, K, M), first key (B, M)) for a new batch of sequences."""
        return self.initial.expand(batch, -1, -1), self.initial.new_zeros(batch, self.width)

    def heads(self, h: torch.Tensor):
        k, e, a = self.kea(h).chunk(3, dim=-1)
        return torch.tanh(k), torch.sigmoid(e), torch.tanh(a)


class MemoryLSTM(nn.Module):
    """One task's ME-LSTM cell reading ``len(memories)`` memories (1 for ME-LSTM/ARC-I, 2 for ARC-II).

    The memories themselves are passed to :meth:`forward`, so several tasks can share one.
    """

    def __init__(self, input_dim: int, hidden_dim: int, memory_widths: list[int]):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.input = nn.Linear(input_dim, 4 * hidden_dim)                  # W x_t + b
        self.recurrent = nn.Linear(hidden_dim, 4 * hidden_dim, bias=False)  # U h_{t-1}
        self.fuse_c = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in memory_widths)
        self.fuse_r = nn.ModuleList(nn.Linear(w, hidden_dim, bias=False) for w in memory_widths)
        self.project_r = nn.ModuleList(nn.Linear(w, hidden_dim, bias=False) for w in memory_widths)
        with torch.no_grad():
            self.input.bias[hidden_dim:2 * hidden_dim].fill_(1.0)          # forget gate open

    def forward(self, x: torch.Tensor, mask: torch.Tensor, memories: list[ExternalMemory]):
        """x (B, T, D), mask (B, T) -> h (B, T, H), the fusion gates (one (B, T, H) per memory) and
        each memory's final content (B, K, M).

        The J memories (2 for ARC-II) are stacked into one (J, B, K, M) tensor, every per-memory
        projection is one batched product, and the time loop is the kernel
        :func:`~polytask.ops.memory_lstm_recurrence`, whose backward pass through time is written
        out. The result equals :meth:`forward_reference`, the step as the equations read (tested,
        gradients included); it trains about 2.5× faster.
        """
        shapes = {tuple(m.initial.shape) for m in memories}
        if len(shapes) != 1:                       # memories of different sizes cannot be stacked
            return self.forward_reference(x, mask, memories)
        B, T, _ = x.shape
        J = len(memories)
        pre = self.input(x).transpose(0, 1)                                 # (T, B, 4H), one matmul
        rec = self.recurrent.weight.t()
        mem = torch.stack([m.initial.expand(B, -1, -1) for m in memories])  # (J, B, K, M)
        beta = torch.stack([m.sharpness for m in memories]).view(J, 1, 1)
        kea_w = torch.stack([m.kea.weight.t() for m in memories])           # (J, H, 3M)
        kea_b = torch.stack([m.kea.bias for m in memories])[:, None]        # (J, 1, 3M)
        fc_w = torch.cat([f.weight for f in self.fuse_c]).t()               # (H, J·H)
        fc_b = torch.cat([f.bias for f in self.fuse_c])
        r_w = torch.stack([torch.cat([fr.weight, pr.weight]).t()            # (J, M, 2H): gate | projection
                           for fr, pr in zip(self.fuse_r, self.project_r)])
        keep = mask.t().unsqueeze(-1).to(x.dtype).contiguous()              # (T, B, 1)
        out, gates, final = memory_lstm_recurrence(pre, keep, mem, rec, fc_w, fc_b, r_w, kea_w, kea_b, beta)
        m = mask[..., None].to(out.dtype)
        out, gates = out.transpose(0, 1), gates.permute(1, 2, 0, 3)         # (B, T, H), (J, B, T, H)
        return out * m, [gates[j] * m for j in range(J)], list(final.unbind(0))

    def forward_reference(self, x: torch.Tensor, mask: torch.Tensor, memories: list[ExternalMemory]):
        """The step as the equations read, one memory at a time (the tests hold :meth:`forward` to it)."""
        B, T, _ = x.shape
        H = self.hidden_dim
        pre = self.input(x).unbind(1)                                       # T × (B, 4H), one matmul
        h = x.new_zeros(B, H)
        c = x.new_zeros(B, H)
        state = [m.start(B) for m in memories]                              # [(M, key)]
        outs, gates = [], [[] for _ in memories]
        for t in range(T):
            keep = mask[:, t, None]                                         # (B, 1)
            reads = [memory_read(mem, key, m.sharpness) for (mem, key), m in zip(state, memories)]
            i, f, o, g = (pre[t] + self.recurrent(h)).chunk(4, dim=-1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            fused = c_new
            for j, (_, r) in enumerate(reads):
                gate = torch.sigmoid(self.fuse_c[j](c_new) + self.fuse_r[j](r))
                fused = fused + gate * self.project_r[j](r)
                gates[j].append(gate)
            h_new = torch.sigmoid(o) * torch.tanh(fused)
            new_state = []
            for (mem, key), (alpha, _), m in zip(state, reads, memories):
                k, e, a = m.heads(h_new)
                mem_new = memory_write(mem, alpha, e, a)
                new_state.append((torch.where(keep[:, :, None], mem_new, mem), torch.where(keep, k, key)))
            state = new_state
            h = torch.where(keep, h_new, h)
            c = torch.where(keep, c_new, c)
            outs.append(h_new)
        m = mask[..., None].to(x.dtype)
        return (torch.stack(outs, dim=1) * m, [torch.stack(gate, dim=1) * m for gate in gates],
                [mem for mem, _ in state])


class SharedMemoryModel(MultiTaskModel):
    """ME-LSTM (local memories only), ARC-I (one global memory) or ARC-II (local + global), as the
    builder gives the memories: a task's cell reads its local memory, then the global one."""

    def __init__(self, embedding: nn.Module, tasks: list[TaskSpec], hidden_dim: int,
                 global_memory: Optional[ExternalMemory], local_memory: Optional[dict[str, ExternalMemory]],
                 pooling: str, dropout: float):
        super().__init__(tasks)
        self.embedding = embedding
        self.global_memory = global_memory
        self.local_memory = nn.ModuleDict(local_memory) if local_memory is not None else None
        widths = [m.width for m in self.memories(tasks[0].name)]
        self.cells = nn.ModuleDict({t.name: MemoryLSTM(embedding.output_dim, hidden_dim, widths) for t in tasks})
        self.pool = Pooling(pooling, bidirectional=False)
        self.heads = nn.ModuleDict({t.name: task_head(t, hidden_dim, dropout) for t in tasks})

    def memories(self, task: str) -> list[ExternalMemory]:
        local = [self.local_memory[task]] if self.local_memory is not None else []
        return local + ([self.global_memory] if self.global_memory is not None else [])

    def encode(self, task: str, text: Text) -> Encoding:
        x = self.embedding(text.tokens) if text.chars is None else self.embedding(text.tokens, text.chars)
        states, gates, _ = self.cells[task](x, text.mask, self.memories(task))   # (B, T, H), J × (B, T, H)
        inspect = {}
        if self.global_memory is not None:
            inspect["fusion_global"] = gates[-1].detach()
        if self.local_memory is not None:
            inspect["fusion_local"] = gates[0].detach()
        return Encoding(states, text.mask, pool=self.pool, inspect=inspect)

    def shared_parameters(self):
        yield from self.embedding.parameters()
        if self.global_memory is not None:
            yield from self.global_memory.parameters()

    def task_parameters(self, task: str):
        yield from self.cells[task].parameters()
        if self.local_memory is not None:
            yield from self.local_memory[task].parameters()
        yield from self.heads[task].parameters()


def _memory(m: SharedMemoryConfig) -> ExternalMemory:
    return ExternalMemory(m.encoder.hidden_dim, m.memory_slots, m.memory_width, m.memory_sharpness)


def build_me_lstm(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
                  num_chars: int = 0) -> SharedMemoryModel:
    """ME-LSTM: each task's cell with a memory of its own; only the embedding is shared."""
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    local = {t.name: _memory(m) for t in tasks}
    return SharedMemoryModel(embedding, tasks, m.encoder.hidden_dim, None, local, m.pooling, m.dropout)


def build_arc1(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
               num_chars: int = 0) -> SharedMemoryModel:
    """ARC-I: every task's cell reads and writes one global memory."""
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    return SharedMemoryModel(embedding, tasks, m.encoder.hidden_dim, _memory(m), None, m.pooling, m.dropout)


def build_arc2(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
               num_chars: int = 0) -> SharedMemoryModel:
    """ARC-II: a local memory per task beside the global one."""
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    shared = _memory(m)                                     # drawn before the local memories
    local = {t.name: _memory(m) for t in tasks}
    return SharedMemoryModel(embedding, tasks, m.encoder.hidden_dim, shared, local, m.pooling, m.dropout)


ARCHITECTURES = {"me_lstm": (SharedMemoryConfig, build_me_lstm),
                 "shared_memory_arc1": (SharedMemoryConfig, build_arc1),
                 "shared_memory_arc2": (SharedMemoryConfig, build_arc2)}
