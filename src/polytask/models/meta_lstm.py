"""Meta Multi-Task Learning: a shared Meta-LSTM generates each task's LSTM, step by step.

Chen, Qiu, Liu, Huang, AAAI 2018, "Meta Multi-Task Learning for Sequence Modeling" (§3-4).
Function-level sharing: instead of sharing features, all tasks share a small *Meta-LSTM* that, at
every step, produces a vector z_t from which the parameters of the task's *Basic-LSTM* are made:

    Meta-LSTM:   (ĥ_t, ĉ_t) = LSTMCell([x_t; h_{t-1}], (ĥ_{t-1}, ĉ_{t-1}))      shared
                 z_t = W_z ĥ_t
    Basic-LSTM:  [i; f; o; g]_t = act(W(z_t) [x_t; h_{t-1}] + b(z_t))             task k
                 W_*(z) = P_* diag(Q_* z) R_*,   b_*(z) = B_* z                    per gate *

so W_*(z) u = P_*((R_* u) ⊙ (Q_* z)). Splitting R_* = [R_*^x, R_*^h], the input part R^x x_t is
one matrix product over the whole sequence; only the h_{t-1} part stays in the time loop, and the
two products that read ĥ_t (Q W_z ĥ and B W_z ĥ) are merged into one. The time loop itself is a
fast kernel (:func:`polytask.ops.meta_lstm_recurrence`, backward through time written out).
Nothing in the maths changes: :func:`reference_meta_lstm` builds W(z_t) explicitly, as the
equations read, and the tests check both agree to 1e-5.

Bidirectional: a second pass over each sequence reversed within its length, with its own
Meta-LSTM or the same one (``model.meta_shared_directions``) and its own Basic-LSTM parameters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from torch import nn

from ..config import ModelConfig
from ..modules import Pooling
from ..modules.embeddings import build_embedding
from ..modules.encoders import reverse_padded
from ..ops import meta_lstm_recurrence
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head


@dataclass
class MetaLSTMConfig(ModelConfig):
    """The shared Meta-LSTM: hidden size, size of z_t, rank m of W(z) = P diag(Qz) R, and whether
    one Meta-LSTM serves both directions. ``encoder.hidden_dim`` is each task's Basic-LSTM."""

    encoders: ClassVar[tuple[str, ...]] = ("bilstm",)
    limits: ClassVar[dict[str, str]] = {"meta_hidden_dim": ">= 1", "meta_dim": ">= 1", "meta_rank": ">= 1"}

    meta_hidden_dim: int = 40
    meta_dim: int = 40
    meta_rank: int = 40
    meta_shared_directions: bool = False


class MetaLSTM(nn.Module):
    """The shared Meta-LSTM: reads [x_t; h_{t-1}] and its own state, emits z_t (size ``meta_dim``)."""

    def __init__(self, input_dim: int, hidden_dim: int, meta_hidden: int, meta_dim: int):
        super().__init__()
        self.input_dim, self.hidden_dim, self.meta_hidden, self.meta_dim = input_dim, hidden_dim, meta_hidden, meta_dim
        self.w_x = nn.Parameter(torch.empty(4 * meta_hidden, input_dim))     # from x_t
        self.w_h = nn.Parameter(torch.empty(4 * meta_hidden, hidden_dim))    # from the Basic h_{t-1}
        self.w_m = nn.Parameter(torch.empty(4 * meta_hidden, meta_hidden))   # from ĥ_{t-1}
        self.bias = nn.Parameter(torch.zeros(4 * meta_hidden))
        self.w_z = nn.Parameter(torch.empty(meta_dim, meta_hidden))          # z_t = W_z ĥ_t
        for w in (self.w_x, self.w_h, self.w_m, self.w_z):
            nn.init.uniform_(w, -1 / math.sqrt(w.shape[1]), 1 / math.sqrt(w.shape[1]))
        with torch.no_grad():
            self.bias[meta_hidden:2 * meta_hidden].fill_(1.0)                # forget gate open


class BasicLSTM(nn.Module):
    """One task's dynamic LSTM: the static factors P, Q, R, B of W(z) = P diag(Qz) R, b(z) = Bz."""

    def __init__(self, input_dim: int, hidden_dim: int, rank: int, meta_dim: int):
        super().__init__()
        self.hidden_dim, self.rank = hidden_dim, rank
        self.p = nn.Parameter(torch.empty(4, hidden_dim, rank))              # gates i, f, o, g
        self.q = nn.Parameter(torch.empty(4 * rank, meta_dim))
        self.r_x = nn.Parameter(torch.empty(4 * rank, input_dim))
        self.r_h = nn.Parameter(torch.empty(4 * rank, hidden_dim))
        self.b = nn.Parameter(torch.empty(4 * hidden_dim, meta_dim))
        nn.init.uniform_(self.p, -1 / math.sqrt(rank), 1 / math.sqrt(rank))
        nn.init.normal_(self.q, std=1.0 / math.sqrt(meta_dim))
        nn.init.uniform_(self.r_x, -1 / math.sqrt(input_dim), 1 / math.sqrt(input_dim))
        nn.init.uniform_(self.r_h, -1 / math.sqrt(hidden_dim), 1 / math.sqrt(hidden_dim))
        nn.init.normal_(self.b, std=0.1 / math.sqrt(meta_dim))


def meta_lstm_pass(x: torch.Tensor, meta: MetaLSTM, basic: BasicLSTM) -> torch.Tensor:
    """Run Meta-LSTM + Basic-LSTM over x (B, T, D) left to right; returns h (B, T, H)."""
    return meta_lstm_passes([x], [meta], [basic])[0]


def meta_lstm_passes(xs: list[torch.Tensor], metas: list[MetaLSTM], basics: list[BasicLSTM]) -> list[torch.Tensor]:
    """Several independent Meta-LSTM passes (e.g. the two directions of a bidirectional encoder) run
    as one batched time loop: pass k reads xs[k] (B, T, D) with metas[k] and basics[k].
    Returns each pass's h (B, T, H)."""
    K = len(xs)
    B, T, _ = xs[0].shape
    M, R = metas[0].meta_hidden, basics[0].rank
    stack = lambda f: torch.stack([f(m, b) for m, b in zip(metas, basics)])  # noqa: E731
    # whole-sequence input projections: one batched product each, outside the loop, time-major
    x = torch.stack(xs).transpose(1, 2).reshape(K, T * B, -1)                 # (K, T·B, D)
    meta_x = torch.baddbmm(stack(lambda m, b: m.bias)[:, None], x, stack(lambda m, b: m.w_x.t()))
    basic_x = torch.bmm(x, stack(lambda m, b: b.r_x.t()))
    meta_x = meta_x.view(K, T, B, 4 * M).transpose(0, 1)                       # (T, K, B, 4M)
    basic_x = basic_x.view(K, T, B, 4 * R).transpose(0, 1)                     # (T, K, B, 4R)
    # everything h_{t-1} feeds (the Meta-LSTM input and R^h h) in one product
    from_h = stack(lambda m, b: torch.cat([m.w_h, b.r_h], dim=0).t())         # (K, H, 4M + 4R)
    # everything ĥ_t feeds (Q z_t and B z_t, with z_t = W_z ĥ_t) in one product
    from_m = stack(lambda m, b: torch.cat([b.q @ m.w_z, b.b @ m.w_z], dim=0).t())  # (K, M, 4R + 4H)
    w_m = stack(lambda m, b: m.w_m.t())                                        # (K, M, 4M)
    p = torch.stack([b.p for b in basics])                                     # (K, 4, H, R)
    h = meta_lstm_recurrence(meta_x, basic_x, from_h, w_m, from_m, p)          # (T, K, B, H)
    return list(h.permute(1, 2, 0, 3).unbind(0))                               # K × (B, T, H)


def reference_meta_lstm(x: torch.Tensor, meta: MetaLSTM, basic: BasicLSTM) -> torch.Tensor:
    """The equations as written, with plain autograd: every step builds each example's gate matrices
    W_*(z_t) = P_* diag(Q_* z_t) R_* explicitly, (B, 4, H, D + H), and applies them to [x_t; h_{t-1}].
    The straightforward implementation: for the tests, and the speed baseline of the benchmark."""
    B, T, D = x.shape
    H, M, R = basic.hidden_dim, meta.meta_hidden, basic.rank
    h, c = x.new_zeros(B, H), x.new_zeros(B, H)
    mh, mc = x.new_zeros(B, M), x.new_zeros(B, M)
    outs = []
    r_full = torch.cat([basic.r_x, basic.r_h], dim=1).view(4, R, D + H)      # R_* = [R^x, R^h]
    q = basic.q.view(4, R, -1)
    bias = basic.b.view(4, H, -1)
    for t in range(T):
        inp = torch.cat([x[:, t], h], dim=1)                                  # [x_t; h_{t-1}]
        mg = inp @ torch.cat([meta.w_x, meta.w_h], dim=1).t() + mh @ meta.w_m.t() + meta.bias
        mi, mf, mo, mgg = mg.chunk(4, dim=1)
        mc = torch.sigmoid(mf) * mc + torch.sigmoid(mi) * torch.tanh(mgg)
        mh = torch.sigmoid(mo) * torch.tanh(mc)
        z = mh @ meta.w_z.t()                                                 # (B, Z)
        qz = torch.einsum("krz,bz->bkr", q, z)                                # Q_* z per example
        w = torch.einsum("khr,bkr,krd->bkhd", basic.p, qz, r_full)            # W_*(z), (B, 4, H, D + H)
        gates = torch.einsum("bkhd,bd->bkh", w, inp) + torch.einsum("khz,bz->bkh", bias, z)
        i, f, o, g = gates.unbind(1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, dim=1)


class MetaLSTMEncoder(nn.Module):
    """Bidirectional Meta-LSTM encoder for all tasks: shared Meta-LSTM(s), a Basic-LSTM per task
    and direction. ``encoder(task, x, mask)``: x (B, T, D) -> states (B, T, 2H), zero at padding."""

    def __init__(self, task_names: list[str], input_dim: int, hidden_dim: int, meta_hidden: int,
                 meta_dim: int, rank: int, share_directions: bool = False):
        super().__init__()
        self.meta_fwd = MetaLSTM(input_dim, hidden_dim, meta_hidden, meta_dim)
        self.meta_bwd = self.meta_fwd if share_directions else MetaLSTM(input_dim, hidden_dim, meta_hidden, meta_dim)
        self.basic_fwd = nn.ModuleDict({t: BasicLSTM(input_dim, hidden_dim, rank, meta_dim) for t in task_names})
        self.basic_bwd = nn.ModuleDict({t: BasicLSTM(input_dim, hidden_dim, rank, meta_dim) for t in task_names})
        self.output_dim = 2 * hidden_dim

    def forward(self, task: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.long().sum(1)                                         # (B,)
        fwd, bwd = meta_lstm_passes([x, reverse_padded(x, lengths)], [self.meta_fwd, self.meta_bwd],
                                    [self.basic_fwd[task], self.basic_bwd[task]])   # 2 × (B, T, H)
        bwd = reverse_padded(bwd, lengths)                                   # back in reading order
        return torch.cat([fwd, bwd], dim=-1) * mask[..., None].to(x.dtype)   # (B, T, 2H)


class MetaMTLModel(MultiTaskModel):
    """Embedding (shared) -> Meta-LSTM encoder (shared Meta-LSTM, the task's Basic-LSTMs) -> per-word
    states (B, T, 2H), max/mean/last pooled into the sentence vector."""

    def __init__(self, embedding: nn.Module, encoder: MetaLSTMEncoder, tasks: list[TaskSpec],
                 pooling: str, dropout: float):
        super().__init__(tasks)
        self.embedding, self.encoder = embedding, encoder
        self.pool = Pooling(pooling, bidirectional=True)
        self.heads = nn.ModuleDict({t.name: task_head(t, encoder.output_dim, dropout) for t in tasks})

    def encode(self, task: str, text: Text) -> Encoding:
        x = self.embedding(text.tokens) if text.chars is None else self.embedding(text.tokens, text.chars)
        states = self.encoder(task, x, text.mask)                            # (B, T, 2H)
        return Encoding(states, text.mask, pool=self.pool)

    def shared_parameters(self):
        yield from self.embedding.parameters()
        yield from self.encoder.meta_fwd.parameters()
        if self.encoder.meta_bwd is not self.encoder.meta_fwd:
            yield from self.encoder.meta_bwd.parameters()

    def task_parameters(self, task: str):
        yield from self.encoder.basic_fwd[task].parameters()
        yield from self.encoder.basic_bwd[task].parameters()
        yield from self.heads[task].parameters()


def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
          num_chars: int = 0) -> MetaMTLModel:
    m = cfg.model
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    encoder = MetaLSTMEncoder([t.name for t in tasks], embedding.output_dim, m.encoder.hidden_dim,
                              m.meta_hidden_dim, m.meta_dim, m.meta_rank, m.meta_shared_directions)
    return MetaMTLModel(embedding, encoder, tasks, m.pooling, m.dropout)


ARCHITECTURES = {"meta_lstm": (MetaLSTMConfig, build)}
