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
fusion gates are returned in ``TaskOutput.inspect`` ("fusion_global", (B, T, H)) so a user can see
how much each step drew from the shared memory. Padding steps leave every state and the memory
unchanged.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ..modules import Pooling
from ..modules.embeddings import build_embedding
from .outputs import TaskOutput, TaskSpec, classification_output, tagging_output, task_head

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

from ..config import ConfigError, ModelConfig

@dataclass
class SharedMemoryConfig(ModelConfig):
    """K memory slots of width M (Liu et al. 2016: (50, 20)) and the initial β of the cosine
    addressing. ``encoder.hidden_dim`` is each task's memory-enhanced LSTM."""

    encoders: ClassVar[tuple[str, ...]] = ("lstm", "bilstm")

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
        projection is one batched product, and the time loop is :class:`_MemoryRecurrence`, whose
        backward pass through time is written out. The result equals :meth:`forward_reference`,
        the step as the equations read (tested, gradients included); it trains about 2.5× faster.
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
        inputs = [t.float() for t in (pre.contiguous(), keep, mem, rec, fc_w, fc_b, r_w, kea_w, kea_b, beta)]
        with torch.autocast(x.device.type, enabled=False):                 # the loop runs in float32
            out, gates, final = _MemoryRecurrence.apply(*inputs)
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


class _MemoryRecurrence(torch.autograd.Function):
    """The time loop of :meth:`MemoryLSTM.forward` with its backward pass through time written out
    (autograd's version replays ~60 small operations per step on the (J, B, K, M) memories).

    Inputs, time-major: pre (T, B, 4H) = W x_t + b; keep (T, B, 1) 1 at real tokens; mem0 (J, B, K, M);
    rec (H, 4H); fc_w (H, J·H), fc_b (J·H); r_w (J, M, 2H) (fusion-gate | projection of the read
    vector); kea_w (J, H, 3M), kea_b (J, 1, 3M) (key, erase, add); beta (J, 1, 1).
    Outputs: h (T, B, H), fusion gates (T, J, B, H), final memories (J, B, K, M).
    """

    @staticmethod
    def forward(ctx, pre, keep, mem0, rec, fc_w, fc_b, r_w, kea_w, kea_b, beta):
        T, B, _ = pre.shape
        J, _, K, M = mem0.shape
        H = rec.shape[0]
        new = pre.new_empty
        mems, keys = new(T + 1, J * B, K, M), new(T + 1, J * B, 1, M)       # states before step t
        hs, cs = new(T + 1, B, H), new(T + 1, B, H)
        mems[0], keys[0], hs[0], cs[0] = mem0.reshape(J * B, K, M), 0.0, 0.0, 0.0
        keeps = new(T, J * B, K, M)                                          # 1 - α eᵀ, what erasing keeps
        alphas, dots = new(T, J * B, 1, K), new(T, J * B, 1, K)
        row_norms, key_norms = new(T, J * B, 1, K), new(T, J * B, 1, 1)      # |M_k|, |key|
        reads, act = new(T, J * B, 1, M), new(T, B, 4 * H)
        gates, projs, tanh_f = new(T, J, B, H), new(T, J, B, H), new(T, B, H)
        keas, h_news, c_news = new(T, J, B, 3 * M), new(T, B, H), new(T, B, H)
        full = keep.bool().all(1).flatten().tolist()
        beta_jb = beta.expand(J, B, 1).reshape(J * B, 1, 1)
        ones = pre.new_ones(1, 1, 1)
        for t in range(T):
            mem, key = mems[t], keys[t]                                       # (JB, K, M), (JB, 1, M)
            dot = torch.bmm(key, mem.transpose(1, 2), out=dots[t])            # (JB, 1, K)
            torch.linalg.vector_norm(mem, dim=-1, out=row_norms[t, :, 0])
            torch.linalg.vector_norm(key, dim=-1, keepdim=True, out=key_norms[t])
            alpha = torch.softmax(beta_jb * (dot / (row_norms[t] * key_norms[t]).clamp_min(1e-8)), dim=-1)
            alphas[t] = alpha
            r = torch.bmm(alpha, mem, out=reads[t]).view(J, B, M)             # Σ_k α_k M_k
            g_pre = torch.addmm(pre[t], hs[t], rec)
            torch.sigmoid(g_pre[:, :3 * H], out=act[t, :, :3 * H])
            torch.tanh(g_pre[:, 3 * H:], out=act[t, :, 3 * H:])
            i, f, o, g = act[t].chunk(4, dim=-1)
            c_new = torch.addcmul(f * cs[t], i, g, out=c_news[t])
            from_r = torch.bmm(r, r_w)                                        # (J, B, 2H)
            projs[t] = from_r[..., H:]
            z = torch.addmm(fc_b, c_new, fc_w).view(B, J, H).transpose(0, 1) + from_r[..., :H]
            gate = torch.sigmoid(z, out=gates[t])
            torch.tanh(c_new + (gate * projs[t]).sum(0), out=tanh_f[t])
            h_new = torch.mul(o, tanh_f[t], out=h_news[t])
            kea = torch.baddbmm(kea_b, h_new.expand(J, B, H), kea_w)
            torch.tanh(kea[..., :M], out=keas[t, ..., :M])
            torch.sigmoid(kea[..., M:2 * M], out=keas[t, ..., M:2 * M])
            torch.tanh(kea[..., 2 * M:], out=keas[t, ..., 2 * M:])
            k, e, a = (v.reshape(J * B, 1, M) for v in keas[t].chunk(3, dim=-1))
            w = alpha.transpose(1, 2)                                         # (JB, K, 1)
            torch.baddbmm(ones, w, e, alpha=-1.0, out=keeps[t])               # 1 - α eᵀ
            mem_new = torch.baddbmm(mem * keeps[t], w, a)                     # erase, then add α aᵀ
            if full[t]:
                mems[t + 1], keys[t + 1], hs[t + 1], cs[t + 1] = mem_new, k, h_new, c_new
            else:
                kt = keep[t]                                                  # (B, 1)
                kjb = kt.expand(J, B, 1).reshape(J * B, 1, 1)
                torch.lerp(mem, mem_new, kjb, out=mems[t + 1])
                torch.lerp(key, k, kjb, out=keys[t + 1])
                torch.lerp(hs[t], h_new, kt, out=hs[t + 1])
                torch.lerp(cs[t], c_new, kt, out=cs[t + 1])
        ctx.save_for_backward(keep, rec, fc_w, r_w, kea_w, beta_jb, mems, keys, keeps, alphas, dots, row_norms,
                              key_norms, hs, cs, reads, act, gates, projs, tanh_f, keas, h_news, c_news)
        ctx.full, ctx.J = full, J
        return h_news, gates, mems[T].view(J, B, K, M)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_gates_out, d_final):
        (keep, rec, fc_w, r_w, kea_w, beta_jb, mems, keys, keeps, alphas, dots, row_norms, key_norms, hs, cs,
         reads, act, gates, projs, tanh_f, keas, h_news, c_news) = ctx.saved_tensors
        J = ctx.J
        T, JB, K, M = mems.shape[0] - 1, *mems.shape[1:]
        B, H = JB // J, rec.shape[0]
        new = d_out.new_empty
        d_pre, d_z, d_from_r, d_kea = new(T, B, 4 * H), new(T, J, B, H), new(T, J, B, 2 * H), new(T, J, B, 3 * M)
        d_beta = d_out.new_zeros(J, 1, 1)
        dH, dC = d_out.new_zeros(B, H), d_out.new_zeros(B, H)                # w.r.t. the carried states
        dM, dK = d_final.reshape(JB, K, M).clone(), d_out.new_zeros(JB, 1, M)
        rec_t, fc_w_t, r_w_t, kea_w_t = rec.t(), fc_w.t(), r_w.transpose(1, 2), kea_w.transpose(1, 2)
        for t in range(T - 1, -1, -1):
            mem, key, alpha = mems[t], keys[t], alphas[t]                     # (JB, K, M), (JB, 1, M), (JB, 1, K)
            if ctx.full[t]:
                d_h, d_c, d_mn, d_k = dH + d_out[t], dC, dM, dK
                dH, dC = 0.0, 0.0
                dM, dK = None, None
            else:
                kt = keep[t]
                kjb = kt.expand(J, B, 1).reshape(JB, 1, 1)
                d_h, d_c, d_mn, d_k = dH * kt + d_out[t], dC * kt, dM * kjb, dK * kjb
                dH, dC, dM, dK = dH * (1 - kt), dC * (1 - kt), dM * (1 - kjb), dK * (1 - kjb)
            k, e, a = (v.reshape(JB, 1, M) for v in keas[t].chunk(3, dim=-1))
            # memory write M' = M ⊙ (1 - α eᵀ) + α aᵀ
            dm_m = d_mn * mem
            d_alpha = torch.bmm(a, d_mn.transpose(1, 2)) - torch.bmm(e, dm_m.transpose(1, 2))   # (JB, 1, K)
            d_e = -torch.bmm(alpha, dm_m)                                     # (JB, 1, M)
            d_a = torch.bmm(alpha, d_mn)
            dk = d_kea[t]
            torch.mul(d_k.view(J, B, M), 1 - k.view(J, B, M) ** 2, out=dk[..., :M])
            torch.mul(d_e.view(J, B, M), (e * (1 - e)).view(J, B, M), out=dk[..., M:2 * M])
            torch.mul(d_a.view(J, B, M), (1 - a * a).view(J, B, M), out=dk[..., 2 * M:])
            d_h = d_h + torch.bmm(dk, kea_w_t).sum(0)
            # h = o ⊙ tanh(c' + Σ_j gate_j ⊙ proj_j)
            i, f, o, g = act[t].chunk(4, dim=-1)
            tf = tanh_f[t]
            d_fused = d_h * o * (1 - tf * tf)
            gate = gates[t]
            d_gate = d_fused * projs[t] + d_gates_out[t]
            dz = torch.mul(d_gate, gate * (1 - gate), out=d_z[t])               # (J, B, H)
            torch.mul(d_fused, gate, out=d_from_r[t, ..., H:])
            d_from_r[t, ..., :H] = dz
            d_c_new = d_c + d_fused + dz.transpose(0, 1).reshape(B, J * H) @ fc_w_t
            d_r = torch.bmm(d_from_r[t], r_w_t).view(JB, 1, M)                 # (JB, 1, M)
            # c' = σf ⊙ c + σi ⊙ tanh g
            dg = d_pre[t]
            torch.mul(d_c_new * g, i * (1 - i), out=dg[:, :H])
            torch.mul(d_c_new * cs[t], f * (1 - f), out=dg[:, H:2 * H])
            torch.mul(d_h * tf, o * (1 - o), out=dg[:, 2 * H:3 * H])
            torch.mul(d_c_new * i, 1 - g * g, out=dg[:, 3 * H:])
            dC = dC + d_c_new * f
            dH = dH + dg @ rec_t
            # read r = Σ_k α_k M_k, α = softmax(β sim), sim = (M·key) / max(|M_k| |key|, ε)
            d_alpha = d_alpha + torch.bmm(d_r, mem.transpose(1, 2))
            du = alpha * (d_alpha - (alpha * d_alpha).sum(-1, keepdim=True))
            nm, nk = row_norms[t], key_norms[t]                              # (JB, 1, K), (JB, 1, 1)
            norm = nm * nk
            denom = norm.clamp_min(1e-8)
            sim = dots[t] / denom
            d_beta += (du * sim).sum((1, 2)).view(J, B).sum(1).view(J, 1, 1)
            d_sim = beta_jb * du
            d_dot = d_sim / denom                                             # (JB, 1, K)
            d_norm = torch.where(norm > 1e-8, -d_sim * sim / denom, 0.0)
            d_nm, d_nk = d_norm * nk, (d_norm * nm).sum(-1, keepdim=True)
            # every path into M at once: erase, read (α d_rᵀ), similarity (d_dot keyᵀ), row norms
            outer_l = torch.cat([alpha, d_dot], 1).transpose(1, 2)            # (JB, K, 2)
            outer_r = torch.cat([d_r, key], 1)                                # (JB, 2, M)
            d_mem = torch.baddbmm(d_mn * keeps[t], outer_l, outer_r)
            d_mem.addcmul_(mem, (d_nm / nm.clamp_min(1e-12)).transpose(1, 2))
            d_key = torch.bmm(d_dot, mem) + d_nk / nk.clamp_min(1e-12) * key
            dM = d_mem if dM is None else dM + d_mem
            dK = d_key if dK is None else dK + d_key
        flat = lambda v: v.reshape(-1, v.shape[-1])  # noqa: E731
        per_memory = lambda v: v.transpose(0, 1).reshape(J, T * B, -1)  # noqa: E731  (T, J, B, n) -> (J, T·B, n)
        d_rec = flat(hs[:-1]).t() @ flat(d_pre)
        d_z_cat = d_z.permute(0, 2, 1, 3).reshape(T * B, J * H)
        d_fc_w = flat(c_news).t() @ d_z_cat
        d_fc_b = d_z_cat.sum(0)
        d_r_w = torch.bmm(per_memory(reads.view(T, J, B, M)).transpose(1, 2), per_memory(d_from_r))
        d_kea_k = per_memory(d_kea)
        d_kea_w = torch.bmm(flat(h_news).t().expand(J, H, T * B), d_kea_k)
        d_kea_b = d_kea_k.sum(1, keepdim=True)
        return d_pre, None, dM.view(J, B, K, M), d_rec, d_fc_w, d_fc_b, d_r_w, d_kea_w, d_kea_b, d_beta


class SharedMemoryModel(nn.Module):
    """ME-LSTM (no shared memory), ARC-I (one global memory) or ARC-II (local + global memory)."""

    def __init__(self, embedding: nn.Module, tasks: list[TaskSpec], hidden_dim: int, slots: int,
                 width: int, sharpness: float, variant: str, pooling: str, dropout: float):
        super().__init__()
        if variant not in ("me_lstm", "arc1", "arc2"):
            raise ValueError(f"unknown shared-memory variant {variant!r} (me_lstm, arc1, arc2)")
        self.embedding, self.variant = embedding, variant
        names = [t.name for t in tasks]
        self.global_memory = ExternalMemory(hidden_dim, slots, width, sharpness) if variant != "me_lstm" else None
        self.local_memory = (nn.ModuleDict({n: ExternalMemory(hidden_dim, slots, width, sharpness) for n in names})
                             if variant in ("me_lstm", "arc2") else None)
        n_mem = 2 if variant == "arc2" else 1
        self.cells = nn.ModuleDict({n: MemoryLSTM(embedding.output_dim, hidden_dim, [width] * n_mem)
                                    for n in names})
        self.pool = Pooling(pooling, bidirectional=False)
        self.heads = nn.ModuleDict({t.name: task_head(t, hidden_dim, dropout) for t in tasks})
        self.specs = {t.name: t for t in tasks}

    def memories(self, task: str) -> list[ExternalMemory]:
        if self.variant == "me_lstm":
            return [self.local_memory[task]]
        if self.variant == "arc1":
            return [self.global_memory]
        return [self.local_memory[task], self.global_memory]

    def _states(self, task: str, tokens, mask, chars=None):
        x = self.embedding(tokens) if chars is None else self.embedding(tokens, chars)
        return self.cells[task](x, mask, self.memories(task))

    def forward(self, batch) -> TaskOutput:
        spec = self.specs[batch.task]
        states, gates, _ = self._states(batch.task, batch.tokens, batch.mask, batch.chars)
        if spec.tagging:
            out = tagging_output(self.heads[batch.task], states, batch.mask, batch.labels)
        elif spec.pair:
            v, _, _ = self._states(batch.task, batch.tokens_b, batch.mask_b)
            out = classification_output(self.heads[batch.task](self.pool(states, batch.mask),
                                                              self.pool(v, batch.mask_b)), batch.labels)
        else:
            out = classification_output(self.heads[batch.task](self.pool(states, batch.mask)), batch.labels)
        if self.variant != "me_lstm":
            out.inspect["fusion_global"] = gates[-1].detach()
        if self.variant != "arc1":
            out.inspect["fusion_local"] = gates[0].detach()
        return out

    def shared_parameters(self):
        yield from self.embedding.parameters()
        if self.global_memory is not None:
            yield from self.global_memory.parameters()

    def task_parameters(self, task: str):
        yield from self.cells[task].parameters()
        if self.local_memory is not None:
            yield from self.local_memory[task].parameters()
        yield from self.heads[task].parameters()


def _builder(variant: str):
    def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
              num_chars: int = 0) -> SharedMemoryModel:
        m = cfg.model
        embedding = build_embedding(m, vocab_size, vectors, num_chars)
        return SharedMemoryModel(embedding, tasks, m.encoder.hidden_dim, m.memory_slots, m.memory_width,
                                 m.memory_sharpness, variant, m.pooling, m.dropout)
    return build


build_me_lstm = _builder("me_lstm")
build_arc1 = _builder("arc1")
build_arc2 = _builder("arc2")


ARCHITECTURES = {"me_lstm": (SharedMemoryConfig, build_me_lstm),
                 "shared_memory_arc1": (SharedMemoryConfig, build_arc1),
                 "shared_memory_arc2": (SharedMemoryConfig, build_arc2)}
