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
two products that read ĥ_t (Q W_z ĥ and B W_z ĥ) are merged into one. Nothing in the maths changes:
:func:`reference_meta_lstm` builds W(z_t) explicitly and the tests check both agree to 1e-5.

Bidirectional: a second pass over each sequence reversed within its length, with its own
Meta-LSTM or the same one (``model.meta_shared_directions``) and its own Basic-LSTM parameters.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ..modules import Pooling
from ..modules.embeddings import build_embedding
from ..modules.encoders import reverse_padded
from .outputs import TaskOutput, TaskSpec, head_output, task_head

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

from ..config import ConfigError, ModelConfig

@dataclass
class MetaLSTMConfig(ModelConfig):
    """The shared Meta-LSTM: hidden size, size of z_t, rank m of W(z) = P diag(Qz) R, and whether
    one Meta-LSTM serves both directions. ``encoder.hidden_dim`` is each task's Basic-LSTM."""

    encoders: ClassVar[tuple[str, ...]] = ("bilstm",)

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
    inputs = [t.float() for t in (meta_x.contiguous(), basic_x.contiguous(), from_h, w_m, from_m, p)]
    with torch.autocast(x.device.type, enabled=False):                         # the loop runs in float32
        h = _MetaRecurrence.apply(*inputs)
    return list(h.permute(1, 2, 0, 3).unbind(0))                               # K × (B, T, H)


class _MetaRecurrence(torch.autograd.Function):
    """The time loop of :func:`meta_lstm_passes` with its backward pass through time written out.

    Autograd would record ~25 small operations per step and replay them one by one; here the
    forward keeps the activations it needs, the backward walks the steps in reverse with a handful
    of fused products, and every weight gradient is one (T·B)-row product after the loop. K passes
    (directions) share each step's operations. Inputs, time-major: meta_x (T, K, B, 4M) =
    W_x x_t + b, basic_x (T, K, B, 4R) = R^x x_t; from_h (K, H, 4M + 4R), w_m (K, M, 4M),
    from_m (K, M, 4R + 4H), p (K, 4, H, R). Output h (T, K, B, H). Gate order i, f, o, g.
    """

    @staticmethod
    def forward(ctx, meta_x, basic_x, from_h, w_m, from_m, p):
        T, K, B, _ = meta_x.shape
        M, (_, _, H, R) = w_m.shape[1], p.shape
        new = meta_x.new_empty
        hs, cs, tcs = new(T + 1, K, B, H), new(T + 1, K, B, H), new(T, K, B, H)   # index t+1 = step t
        mhs, mcs, tmcs = new(T + 1, K, B, M), new(T + 1, K, B, M), new(T, K, B, M)
        for state in (hs, cs, mhs, mcs):
            state[0].zero_()
        mact, act = new(T, K, B, 4 * M), new(T, K, B, 4 * H)                    # activated gates
        zcs, ss = new(T, K, B, 4 * R + 4 * H), new(T, K, B, 4 * R)              # [Qz; Bz], R[x; h]
        us = new(T, K, B, 4 * R)                                                # (R u) ⊙ (Q z)
        p_r = p.transpose(2, 3).reshape(K * 4, R, H)                            # P_k per pass and gate
        for t in range(T):
            a = torch.bmm(hs[t], from_h)
            mg = torch.baddbmm(meta_x[t] + a[..., :4 * M], mhs[t], w_m)
            torch.sigmoid(mg[..., :3 * M], out=mact[t, ..., :3 * M])
            torch.tanh(mg[..., 3 * M:], out=mact[t, ..., 3 * M:])
            mi, mf, mo, mgg = mact[t].chunk(4, dim=-1)
            torch.addcmul(mf * mcs[t], mi, mgg, out=mcs[t + 1])
            torch.tanh(mcs[t + 1], out=tmcs[t])
            torch.mul(mo, tmcs[t], out=mhs[t + 1])
            zc = torch.bmm(mhs[t + 1], from_m, out=zcs[t])
            torch.add(basic_x[t], a[..., 4 * M:], out=ss[t])
            torch.mul(ss[t], zc[..., :4 * R], out=us[t])
            # gate k: P_k (R u ⊙ Q z)_k, every pass and gate in one batched product
            u = us[t].view(K, B, 4, R).transpose(1, 2).reshape(K * 4, B, R)
            g = torch.bmm(u, p_r).view(K, 4, B, H).transpose(1, 2).reshape(K, B, 4 * H)
            g += zc[..., 4 * R:]
            torch.sigmoid(g[..., :3 * H], out=act[t, ..., :3 * H])
            torch.tanh(g[..., 3 * H:], out=act[t, ..., 3 * H:])
            i, f, o, gg = act[t].chunk(4, dim=-1)
            torch.addcmul(f * cs[t], i, gg, out=cs[t + 1])
            torch.tanh(cs[t + 1], out=tcs[t])
            torch.mul(o, tcs[t], out=hs[t + 1])
        ctx.save_for_backward(from_h, w_m, from_m, p, hs, cs, tcs, mhs, mcs, tmcs, mact, act, zcs, ss, us)
        return hs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        from_h, w_m, from_m, p, hs, cs, tcs, mhs, mcs, tmcs, mact, act, zcs, ss, us = ctx.saved_tensors
        T, K, B, H = dout.shape
        M, R = w_m.shape[1], p.shape[3]
        # Everything that does not depend on the incoming gradient, for all steps at once:
        # d gates = [dc, dc, dh, dc] ⊙ [g, c_{t-1}, tanh c, i] ⊙ act'(gates), and dc += dh ⊙ o ⊙ tanh'(c)
        basic_k, basic_o = _gate_factors(act, cs[:-1], tcs)
        meta_k, meta_o = _gate_factors(mact, mcs[:-1], tmcs)
        basic_f, meta_f = act[..., H:2 * H], mact[..., M:2 * M]
        zq_s = torch.cat([ss, zcs[..., :4 * R]], dim=-1)    # d(Qz) = du ⊙ s, d s = du ⊙ Qz
        new = dout.new_empty
        d_a = new(T, K, B, 4 * M + 4 * R)   # d(pre-activation meta gates) | d(R[x; h])
        d_z = new(T, K, B, 4 * R + 4 * H)   # d(Q z)                       | d(pre-activation basic gates)
        dh, dc, dmh, dmc = (dout.new_zeros(K, B, n) for n in (H, H, M, M))
        from_h_t, w_m_t, from_m_t = (w.transpose(1, 2).contiguous() for w in (from_h, w_m, from_m))
        p_h = p.reshape(K * 4, H, R)
        for t in range(T - 1, -1, -1):
            dh = dh + dout[t]
            dc = torch.addcmul(dc, dh, basic_o[t])
            dgates = torch.mul(torch.cat([dc, dc, dh, dc], dim=-1), basic_k[t], out=d_z[t, ..., 4 * R:])
            dc = dc * basic_f[t]
            dg = dgates.view(K, B, 4, H).transpose(1, 2).reshape(K * 4, B, H)
            du = torch.bmm(dg, p_h).view(K, 4, B, R).transpose(1, 2).reshape(K, B, 4 * R)
            d_qz_s = torch.mul(torch.cat([du, du], dim=-1), zq_s[t])
            d_z[t, ..., :4 * R] = d_qz_s[..., :4 * R]
            d_a[t, ..., 4 * M:] = d_qz_s[..., 4 * R:]
            dmh = torch.baddbmm(dmh, d_z[t], from_m_t)
            dmc = torch.addcmul(dmc, dmh, meta_o[t])
            dmg = torch.mul(torch.cat([dmc, dmc, dmh, dmc], dim=-1), meta_k[t], out=d_a[t, ..., :4 * M])
            dmc = dmc * meta_f[t]
            dmh = torch.bmm(dmg, w_m_t)
            dh = torch.bmm(d_a[t], from_h_t)
        per_pass = lambda v: v.transpose(0, 1).reshape(K, T * B, -1)  # noqa: E731  (T, K, B, n) -> (K, T·B, n)
        d_a_k, d_z_k = per_pass(d_a), per_pass(d_z)
        d_from_h = torch.bmm(per_pass(hs[:-1]).transpose(1, 2), d_a_k)
        d_w_m = torch.bmm(per_pass(mhs[:-1]).transpose(1, 2), d_a_k[..., :4 * M])
        d_from_m = torch.bmm(per_pass(mhs[1:]).transpose(1, 2), d_z_k)
        d_p = torch.einsum("kngh,kngr->kghr", d_z_k[..., 4 * R:].reshape(K, T * B, 4, H),
                           per_pass(us).reshape(K, T * B, 4, R))
        return d_a[..., :4 * M], d_a[..., 4 * M:], d_from_h, d_w_m, d_from_m, d_p


def _gate_factors(act: torch.Tensor, c_prev: torch.Tensor, tanh_c: torch.Tensor):
    """For an LSTM's activated gates act = [i, f, o, g] (..., 4H), its previous cells and tanh of
    its cells: k = [g, c_{t-1}, tanh c, i] ⊙ [σ'(i), σ'(f), σ'(o), tanh'(g)] and o ⊙ tanh'(c)."""
    i, f, o, g = act.chunk(4, dim=-1)
    sig = act[..., :-g.shape[-1]]
    slope = torch.cat([sig * (1 - sig), 1 - g * g], dim=-1)
    return torch.cat([g, c_prev, tanh_c, i], dim=-1) * slope, o * (1 - tanh_c * tanh_c)


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
    and direction. ``states(task, x, mask)`` -> (B, T, 2H)."""

    def __init__(self, task_names: list[str], input_dim: int, hidden_dim: int, meta_hidden: int,
                 meta_dim: int, rank: int, share_directions: bool = False):
        super().__init__()
        self.meta_fwd = MetaLSTM(input_dim, hidden_dim, meta_hidden, meta_dim)
        self.meta_bwd = self.meta_fwd if share_directions else MetaLSTM(input_dim, hidden_dim, meta_hidden, meta_dim)
        self.basic_fwd = nn.ModuleDict({t: BasicLSTM(input_dim, hidden_dim, rank, meta_dim) for t in task_names})
        self.basic_bwd = nn.ModuleDict({t: BasicLSTM(input_dim, hidden_dim, rank, meta_dim) for t in task_names})
        self.output_dim = 2 * hidden_dim

    def forward(self, task: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.long().sum(1)
        fwd, bwd = meta_lstm_passes([x, reverse_padded(x, lengths)], [self.meta_fwd, self.meta_bwd],
                                    [self.basic_fwd[task], self.basic_bwd[task]])
        bwd = reverse_padded(bwd, lengths)
        return torch.cat([fwd, bwd], dim=-1) * mask[..., None].to(x.dtype)


class MetaMTLModel(nn.Module):
    """Embedding (shared) -> Meta-LSTM encoder -> pooling (classification) or per-step head (tagging)."""

    def __init__(self, embedding: nn.Module, encoder: MetaLSTMEncoder, tasks: list[TaskSpec],
                 pooling: str, dropout: float):
        super().__init__()
        self.embedding, self.encoder = embedding, encoder
        self.pool = Pooling(pooling, bidirectional=True)
        self.heads = nn.ModuleDict({t.name: task_head(t, encoder.output_dim, dropout) for t in tasks})
        self.specs = {t.name: t for t in tasks}

    def _states(self, task: str, tokens, mask, chars=None) -> torch.Tensor:
        x = self.embedding(tokens) if chars is None else self.embedding(tokens, chars)
        return self.encoder(task, x, mask)                                   # (B, T, 2H)

    def forward(self, batch) -> TaskOutput:
        states = self._states(batch.task, batch.tokens, batch.mask, batch.chars)
        return head_output(self.specs[batch.task], self.heads[batch.task], self.pool, states, batch,
                           lambda: self._states(batch.task, batch.tokens_b, batch.mask_b))

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
