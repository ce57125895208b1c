"""The memory-enhanced LSTM recurrence (Liu, Qiu, Huang, EMNLP 2016, §2-3) as one autograd
function with its backward pass through time written out, beside the same recurrence in plain
autograd.

The model (:mod:`polytask.models.shared_memory`) states the equations and projects the input
before the loop; its J memories (1 for ME-LSTM/ARC-I, 2 for ARC-II, local then global) are
stacked into one (J, B, K, M) tensor. What is left for the loop, at every step t::

    α_j = softmax_K(β_j · (M_j k_j) / max(|M_j,row| |k_j|, 1e-8)),  r_j = α_jᵀ M_j   read, per memory
    [i; f; o; g] = act(pre_t + h_{t-1} rec),  c' = σf ⊙ c_{t-1} + σi ⊙ tanh g
    [z_j | p_j] = r_j r_w_j                                       fusion-gate input | projection
    gate_j = σ((c' fc_w + fc_b)_j + z_j)                          deep-fusion gate
    h' = σo ⊙ tanh(c' + Σ_j gate_j ⊙ p_j)
    [k_j; e_j; a_j] = [tanh; σ; tanh](h' kea_w_j + kea_b_j)       key, erase, add
    M_j' = M_j ⊙ (1 - α_j e_jᵀ) + α_j a_jᵀ                        erase, then add

Padding steps (keep = 0) carry h, c, every memory and every key through unchanged; the outputs
h' and gate_j are given at every step (the model masks them).

:func:`reference_memory_lstm_recurrence` is those lines as written; :class:`MemoryRecurrence`
computes the same with a hand-derived backward; :func:`memory_lstm_recurrence` runs it in float32
whatever the autocast context.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


def memory_lstm_recurrence(pre: torch.Tensor, keep: torch.Tensor, mem0: torch.Tensor, rec: torch.Tensor,
                           fc_w: torch.Tensor, fc_b: torch.Tensor, r_w: torch.Tensor, kea_w: torch.Tensor,
                           kea_b: torch.Tensor, beta: torch.Tensor):
    """The recurrence by the fast kernel, in float32 (under bf16/fp16 autocast the input
    projection arrives in half precision; the loop must not run there). Arguments and outputs as
    :class:`MemoryRecurrence`."""
    inputs = [t.float() for t in (pre.contiguous(), keep, mem0, rec, fc_w, fc_b, r_w, kea_w, kea_b, beta)]
    with torch.autocast(pre.device.type, enabled=False):
        return MemoryRecurrence.apply(*inputs)


def reference_memory_lstm_recurrence(pre: torch.Tensor, keep: torch.Tensor, mem0: torch.Tensor, rec: torch.Tensor,
                                     fc_w: torch.Tensor, fc_b: torch.Tensor, r_w: torch.Tensor,
                                     kea_w: torch.Tensor, kea_b: torch.Tensor, beta: torch.Tensor):
    """The recurrence step by step in plain autograd, on the inputs of :class:`MemoryRecurrence`
    (what the kernel is tested against). Returns h (T, B, H), gates (T, J, B, H), memories (J, B, K, M)."""
    T, B, _ = pre.shape
    J, _, _, M = mem0.shape
    H = rec.shape[0]
    h, c = pre.new_zeros(B, H), pre.new_zeros(B, H)
    mem, key = mem0, pre.new_zeros(J, B, M)                                    # (J, B, K, M), (J, B, M)
    outs, gates = [], []
    for t in range(T):
        real = keep[t].bool()                                                  # (B, 1)
        dot = (mem * key[:, :, None]).sum(-1)                                  # (J, B, K)
        sim = dot / (mem.norm(dim=-1) * key.norm(dim=-1, keepdim=True)).clamp_min(1e-8)
        alpha = torch.softmax(beta * sim, dim=-1)                              # (J, B, K)
        r = (alpha[..., None] * mem).sum(2)                                    # (J, B, M)
        i, f, o, g = (pre[t] + h @ rec).chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)        # (B, H)
        from_r = torch.bmm(r, r_w)                                             # (J, B, 2H)
        gate = torch.sigmoid((c_new @ fc_w + fc_b).view(B, J, H).transpose(0, 1) + from_r[..., :H])
        h_new = torch.sigmoid(o) * torch.tanh(c_new + (gate * from_r[..., H:]).sum(0))
        k, e, a = (torch.matmul(h_new, kea_w) + kea_b).chunk(3, dim=-1)        # (J, B, M) each
        k, e, a = torch.tanh(k), torch.sigmoid(e), torch.tanh(a)
        mem_new = mem * (1 - alpha[..., None] * e[:, :, None]) + alpha[..., None] * a[:, :, None]
        mem = torch.where(real[:, :, None], mem_new, mem)                      # (J, B, K, M)
        key = torch.where(real, k, key)
        h, c = torch.where(real, h_new, h), torch.where(real, c_new, c)
        outs.append(h_new)
        gates.append(gate)
    return torch.stack(outs), torch.stack(gates), mem


class MemoryRecurrence(torch.autograd.Function):
    """The memory-enhanced LSTM time loop with its backward pass through time written out
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
