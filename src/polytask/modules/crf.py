"""A linear-chain conditional random field (Lafferty et al. 2001) as one module.

Scores a tag sequence y for emissions E (B, T, C) as

    s(y) = start[y_1] + Σ_t E[t, y_t] + Σ_{t>1} trans[y_{t-1}, y_t] + end[y_T]

and is trained on -log p(y|x) = log Σ_y' exp s(y') - s(y). The partition function (forward
algorithm) and the best path (Viterbi) are computed in log space, vectorised over the batch;
masked (padding) steps carry the state through unchanged. Transitions that a tagging scheme
forbids (``O -> I-X`` in BIO) can be excluded so that neither training nor decoding ever uses them.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

NEG = -1e4  # a forbidden transition's score: exp(NEG) underflows to 0 in float32


def allowed_transitions(labels: list[str], scheme: str = "BIO"):
    """Allowed (from, to) pairs, and allowed first and last tags, for BIO or BIOES labels.

    Labels look like ``B-NP``, ``I-NP``, ``E-NP``, ``S-NP`` or ``O``.

    Returns:
        (pairs, starts, ends): a set of (i, j) index pairs, and sets of allowed start/end indices.
    """
    scheme = scheme.upper()
    if scheme not in ("BIO", "IOB2", "BIOES", "IOBES"):
        raise ValueError(f"unknown tagging scheme {scheme!r} (BIO, BIOES)")
    bioes = scheme in ("BIOES", "IOBES")

    def split(label: str) -> tuple[str, str]:
        if label == "O":
            return "O", ""
        prefix, _, kind = label.partition("-")
        if prefix not in ("B", "I", "E", "S") or not kind:
            raise ValueError(f"label {label!r} is not in {scheme} form (B-X, I-X, ... or O)")
        return prefix, kind

    parts = [split(label) for label in labels]
    pairs, starts, ends = set(), set(), set()
    for i, (p, k) in enumerate(parts):
        if p in ("O", "B", "S"):
            starts.add(i)
        if p in ("O", "S", "E") or (not bioes and p in ("B", "I")):
            ends.add(i)
        for j, (q, m) in enumerate(parts):
            if bioes:
                inside = p in ("B", "I")                  # a chunk is open after B or I
                ok = (q in ("I", "E") and m == k) if inside else q in ("O", "B", "S")
            else:
                ok = q != "I" or (p in ("B", "I") and m == k)
            if ok:
                pairs.add((i, j))
    return pairs, starts, ends


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags.

    Args:
        num_tags: C.
        constraints: optional ``(pairs, starts, ends)`` from :func:`allowed_transitions`.
    """

    def __init__(self, num_tags: int, constraints=None):
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))   # [from, to]
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        nn.init.uniform_(self.transitions, -0.1, 0.1)
        trans_mask = torch.zeros(num_tags, num_tags)
        start_mask = torch.zeros(num_tags)
        end_mask = torch.zeros(num_tags)
        if constraints is not None:
            pairs, starts, ends = constraints
            trans_mask.fill_(NEG)
            start_mask.fill_(NEG)
            end_mask.fill_(NEG)
            for i, j in pairs:
                trans_mask[i, j] = 0.0
            start_mask[list(starts)] = 0.0
            end_mask[list(ends)] = 0.0
        self.register_buffer("trans_mask", trans_mask, persistent=False)
        self.register_buffer("start_mask", start_mask, persistent=False)
        self.register_buffer("end_mask", end_mask, persistent=False)

    def _scores(self):
        return (self.transitions + self.trans_mask, self.start + self.start_mask,
                self.end + self.end_mask)

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Σ_y exp s(y), (B,). ``mask`` (B, T) must be True at step 0 of every sequence."""
        trans, start, end = self._scores()
        alpha = start[None] + emissions[:, 0]                                # (B, C)
        for t in range(1, emissions.shape[1]):
            # (B, C_from, 1) + (C_from, C_to) -> logsumexp over from -> (B, C_to)
            step = torch.logsumexp(alpha[:, :, None] + trans[None], dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t, None], step, alpha)
        return torch.logsumexp(alpha + end[None], dim=1)

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """s(y) of the given tags (B, T), (B,); padded steps ignored."""
        trans, start, end = self._scores()
        B, T = tags.shape
        m = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags[..., None]).squeeze(-1)              # (B, T)
        total = start[tags[:, 0]] + (emit * m).sum(1)
        if T > 1:
            total = total + (trans[tags[:, :-1], tags[:, 1:]] * m[:, 1:]).sum(1)
        last = tags.gather(1, (mask.long().sum(1) - 1).clamp_min(0)[:, None]).squeeze(1)
        return total + end[last]

    def neg_log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor,
                           mask: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        nll = self.log_partition(emissions, mask) - self.score(emissions, tags, mask)
        if reduction == "none":
            return nll
        return nll.sum() if reduction == "sum" else nll.mean()

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Viterbi: the best tag sequence (B, T); padded positions are 0."""
        return viterbi(emissions, mask, *self._scores())


def viterbi(emissions: torch.Tensor, mask: torch.Tensor, transitions: torch.Tensor,
            start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """The best tag path (B, T) of a linear-chain CRF, 0 at padding. ``transitions`` (C, C)
    [from, to], ``start`` and ``end`` (C,) already include a scheme's forbidden-transition
    penalties. Plain tensor code that ``torch.jit.script`` compiles (the export keeps its loops over
    T as loops instead of unrolling them for one length)."""
    B, T, C = emissions.shape
    delta = start[None] + emissions[:, 0]                                     # (B, C)
    back = torch.zeros(B, T, C, dtype=torch.long, device=emissions.device)
    stay = torch.arange(C, device=emissions.device)[None]                     # (1, C)
    for t in range(1, T):
        best, arg = (delta[:, :, None] + transitions[None]).max(dim=1)        # (B, C_to)
        keep = mask[:, t, None]
        delta = torch.where(keep, best + emissions[:, t], delta)
        back[:, t] = torch.where(keep, arg, stay)          # padding points each tag back to itself
    tag = (delta + end[None]).argmax(dim=1)                                   # (B,)
    path = torch.zeros(B, T, dtype=torch.long, device=emissions.device)
    path[:, T - 1] = tag
    for t in range(T - 1, 0, -1):
        tag = back[:, t].gather(1, tag[:, None]).squeeze(1)
        path[:, t - 1] = tag
    return path * mask.long()


def brute_force(crf: CRF, emissions: torch.Tensor, length: Optional[int] = None):
    """Log partition and best path of ONE sequence (T, C) by enumerating all C^T paths (tests)."""
    import itertools
    T = emissions.shape[0] if length is None else length
    trans, start, end = crf._scores()
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=T):
        s = start[path[0]] + end[path[-1]] + sum(emissions[t, path[t]] for t in range(T))
        s = s + sum(trans[path[t - 1], path[t]] for t in range(1, T))
        scores[path] = s
    stacked = torch.stack(list(scores.values()))
    best = max(scores, key=lambda p: scores[p].item())
    return torch.logsumexp(stacked, 0), list(best)
