"""The Meta-LSTM recurrence (Chen et al., AAAI 2018, §4) as one autograd function with its
backward pass through time written out, beside the same recurrence in plain autograd.

The model (:mod:`polytask.models.meta_lstm`) states the equations and projects the whole sequence
before the loop; what is left for the loop, with K independent passes (directions) side by side,
time-major inputs and gate order i, f, o, g, is, at every step t::

    a_t = h_{t-1} from_h                                     [W_h h_{t-1} | R^h h_{t-1}]
    (ĥ_t, ĉ_t) = LSTM(meta_x_t + a_t[:4M] + ĥ_{t-1} w_m, ĉ_{t-1})     the Meta-LSTM
    [Qz_t | Bz_t] = ĥ_t from_m                                (z_t = W_z ĥ_t folded into from_m)
    u_t = (basic_x_t + a_t[4M:]) ⊙ Qz_t                       (R [x_t; h_{t-1}]) ⊙ (Q z_t)
    gate_* = P_* u_{t,*} + (Bz_t)_*                           W_*(z_t)[x_t; h_{t-1}] + b_*(z_t)
    (h_t, c_t) = LSTM cell update from the four gates

:func:`reference_meta_lstm_recurrence` is those lines as written; :class:`MetaRecurrence` computes
the same with a fused forward and a hand-derived backward; :func:`meta_lstm_recurrence` runs it in
float32 whatever the autocast context.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


def meta_lstm_recurrence(meta_x: torch.Tensor, basic_x: torch.Tensor, from_h: torch.Tensor, w_m: torch.Tensor,
                         from_m: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The recurrence by the fast kernel, in float32 (under bf16/fp16 autocast the projections
    arrive in half precision; the loop must not run there). Arguments as :class:`MetaRecurrence`;
    returns h (T, K, B, H)."""
    inputs = [t.float() for t in (meta_x.contiguous(), basic_x.contiguous(), from_h, w_m, from_m, p)]
    with torch.autocast(meta_x.device.type, enabled=False):
        return MetaRecurrence.apply(*inputs)


def reference_meta_lstm_recurrence(meta_x: torch.Tensor, basic_x: torch.Tensor, from_h: torch.Tensor,
                                   w_m: torch.Tensor, from_m: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The recurrence step by step in plain autograd, on the inputs of :class:`MetaRecurrence`
    (what the kernel is tested against). Returns h (T, K, B, H)."""
    T, K, B, _ = meta_x.shape
    M, (_, _, H, R) = w_m.shape[1], p.shape
    h, c = meta_x.new_zeros(K, B, H), meta_x.new_zeros(K, B, H)
    mh, mc = meta_x.new_zeros(K, B, M), meta_x.new_zeros(K, B, M)
    outs = []
    for t in range(T):
        a = torch.bmm(h, from_h)                                               # (K, B, 4M + 4R)
        mi, mf, mo, mg = (meta_x[t] + a[..., :4 * M] + torch.bmm(mh, w_m)).chunk(4, dim=-1)
        mc = torch.sigmoid(mf) * mc + torch.sigmoid(mi) * torch.tanh(mg)
        mh = torch.sigmoid(mo) * torch.tanh(mc)                                # (K, B, M)
        zc = torch.bmm(mh, from_m)                                             # (K, B, 4R + 4H)
        u = (basic_x[t] + a[..., 4 * M:]) * zc[..., :4 * R]                    # (K, B, 4R)
        gates = torch.einsum("kbgr,kghr->kbgh", u.view(K, B, 4, R), p).reshape(K, B, 4 * H) + zc[..., 4 * R:]
        i, f, o, g = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)                                   # (K, B, H)
        outs.append(h)
    return torch.stack(outs)                                                   # (T, K, B, H)


class MetaRecurrence(torch.autograd.Function):
    """The Meta-LSTM time loop with its backward pass through time written out.

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
