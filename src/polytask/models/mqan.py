"""MQAN: the multitask question answering network of decaNLP (McCann, Keskar, Xiong, Socher 2018,
"The Natural Language Decathlon: Multitask Learning as Question Answering", §3, Fig. 2).

Every task is (context, question) -> answer; the question names the task, so the network has no
task-specific parts at all. Shapes: B batch, C context length, Q question length, A answer
length, H hidden size, V vocabulary, V+ the extended vocabulary (V plus the batch's
out-of-vocabulary source words, which can only be copied).

Encoder (§3.1): word embeddings -> a shared BiLSTM over context and question (with a skip
connection of the embeddings) -> coattention (each side summarises the other, and the context
also reads the question's summary of it) -> a dimension-reducing BiLSTM -> Transformer
self-attention layers -> a final BiLSTM.

Decoder (§3.2): the answer so far is embedded, passed through Transformer decoder layers that
attend over the context, then an LSTM whose state attends over the final context and question
encodings. The output distribution mixes three sources (Eq. in §3.2):

    p(w) = γ p_vocab(w) + (1 − γ) [λ p_context(w) + (1 − λ) p_question(w)]

with γ (vocabulary vs copying) and λ (context vs question) predicted at every step. Copying from
the question is what answers a question with label words never seen as answers (zero-shot).
``pointers=False`` gives the paper's sequence-to-sequence baseline: p(w) = p_vocab(w) only.

Inputs: word embeddings, concatenated (``model.char_embedding_dim > 0``) with a character encoding
of each word; decaNLP's is the mean of character n-gram embeddings (``model.char_encoder:
ngram``), which also gives context words outside the vocabulary a vector of their own.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..data.batching import QABatch
from ..modules.embeddings import build_char_encoder
from ..modules.encoders import LSTMEncoder
from .contract import MultiTaskModel, TaskOutput, TaskSpec
from .pretrained_encoder import PretrainedModelConfig, build_pretrained_encoder


@dataclass
class MQANConfig(PretrainedModelConfig):
    """The longest generated answer and the beam (1 = greedy decoding). ``encoder.hidden_dim``,
    ``num_layers`` and ``num_heads`` size the encoders; ``encoder.type`` is not read.

    ``pretrained``: a Hugging Face encoder whose state of each context and question word (its
    first sub-token's) joins the word's embedding, as decaNLP's CoVe vectors did; the words, the
    output vocabulary and copying stay MQAN's own. ``freeze: all`` (a fixed feature extractor)
    or ``none``, or LoRA adapters (``adapter``, one shared: MQAN has no task-specific part)."""

    kinds: ClassVar[tuple[str, ...]] = ("qa",)
    pretrained_kinds: ClassVar[tuple[str, ...]] = ("qa",)
    pretrained_beside_words: ClassVar[bool] = True
    limits: ClassVar[dict[str, str]] = {"max_answer_length": ">= 1", "beam_size": ">= 1", "freeze_layers": ">= 0"}

    max_answer_length: int = 30
    beam_size: int = 1

    def check(self, tasks, where: str) -> None:
        super().check(tasks, where)
        if self.pretrained and self.adapter is not None and self.adapter.per_task:
            raise ConfigError(f"{where}.adapter.per_task: MQAN has no task-specific part (the question names the "
                              "task); set per_task: false for one adapter shared by every task")


def _attend(query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor):
    """Dot-product attention of query (B, H) over keys (B, T, H) -> weights (B, T), summary (B, H)."""
    scores = torch.einsum("bh,bth->bt", query, keys).masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights, torch.einsum("bt,bth->bh", weights, keys)


class Coattention(nn.Module):
    """Context (B, C, H) and question (B, Q, H) -> context (B, C, 3H), question (B, Q, 2H)."""

    def forward(self, c, q, c_mask, q_mask):
        affinity = torch.einsum("bch,bqh->bcq", c, q)                              # (B, C, Q)
        over_q = torch.softmax(affinity.masked_fill(~q_mask[:, None, :], float("-inf")), dim=2)
        over_c = torch.softmax(affinity.masked_fill(~c_mask[:, :, None], float("-inf")), dim=1)
        q_summary = torch.einsum("bcq,bch->bqh", over_c, c)                        # question reads context
        c_summary = torch.einsum("bcq,bqh->bch", over_q, q)                        # context reads question
        c_second = torch.einsum("bcq,bqh->bch", over_q, q_summary)                 # ... and its summary
        return torch.cat([c, c_summary, c_second], -1), torch.cat([q, q_summary], -1)


class MQAN(nn.Module):
    """The network of §3 (module docstring): ids in the extended vocabulary in, p(w) out.

    Args:
        vocab_size: V; ids ≥ V are out-of-vocabulary source words, which can only be copied.
        embedding_dim, hidden_dim: widths of the word embeddings and of every encoder (H).
        transformer_layers, num_heads: the self-attention encoder and the answer decoder.
        dropout: on the inputs, inside the Transformer layers and before the vocabulary layer.
        pointers: mix in copying from the context and the question (False: seq2seq baseline).
        char_encoder: a character encoding concatenated to each word's embedding, or None.
        word_dropout: while training, the probability that an in-vocabulary word reads as <unk>.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden_dim: int = 64,
                 transformer_layers: int = 2, num_heads: int = 4, dropout: float = 0.1,
                 pointers: bool = True, char_encoder: Optional[nn.Module] = None, word_dropout: float = 0.0,
                 features: Optional[nn.Module] = None):
        super().__init__()
        if hidden_dim % 2 or hidden_dim % num_heads:
            raise ValueError("hidden_dim must be even and divisible by num_heads")
        H = hidden_dim
        self.vocab_size, self.pointers = vocab_size, pointers
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.char_encoder = char_encoder
        self.word_dropout = word_dropout                   # training: in-vocabulary words -> <unk>
        self.features = features                           # a pretrained encoder's word states, or None
        E = embedding_dim + (char_encoder.output_dim if char_encoder is not None else 0)
        E += features.output_dim if features is not None else 0
        self.shared = LSTMEncoder(E, H // 2)
        self.coattention = Coattention()
        self.reduce_c = LSTMEncoder(3 * H + E, H // 2)
        self.reduce_q = LSTMEncoder(2 * H + E, H // 2)
        layer = lambda: nn.TransformerEncoderLayer(H, num_heads, 2 * H, dropout, batch_first=True)  # noqa: E731
        self.self_attention_c = nn.TransformerEncoder(layer(), transformer_layers, enable_nested_tensor=False)
        self.self_attention_q = nn.TransformerEncoder(layer(), transformer_layers, enable_nested_tensor=False)
        self.final_c = LSTMEncoder(H, H // 2)
        self.final_q = LSTMEncoder(H, H // 2)
        self.answer_embedding = nn.Linear(embedding_dim, H)
        self.positions = nn.Embedding(512, H)
        dec_layer = nn.TransformerDecoderLayer(H, num_heads, 2 * H, dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(dec_layer, transformer_layers)
        self.cell = nn.LSTMCell(2 * H, H)
        self.vocab_out = nn.Linear(3 * H, vocab_size)
        self.switches = nn.Linear(4 * H, 2)                                         # γ, λ
        self.dropout = nn.Dropout(dropout)

    # ------------------------------------------------------------------ encoder
    def _word_states(self, length: int, sub) -> torch.Tensor:
        """The pretrained encoder's state of each word's first sub-token, (B, length, Hp); ``sub``:
        sub-token ids (B, S), their mask, each word's first sub-token (B, W) and its mask. Words
        past the encoder's longest input get zeros."""
        ids, mask, starts, start_mask = sub
        if getattr(self.features, "frozen", False):
            with torch.no_grad():
                states = self.features(ids, mask)
        else:
            states = self.features(ids, mask)                                      # (B, S, Hp)
        words = states.gather(1, starts[..., None].expand(-1, -1, states.shape[-1]))  # (B, W, Hp)
        words = words * start_mask[..., None].to(words.dtype)
        W = words.shape[1]
        return F.pad(words, (0, 0, 0, length - W)) if W < length else words[:, :length]

    def _embed(self, ids: torch.Tensor, chars: Optional[torch.Tensor], sub=None) -> torch.Tensor:
        """Source ids (extended vocabulary: a copied OOV word reads as <pad>, zeros) -> (B, T, E)."""
        length = ids.shape[1]
        ids = ids.clamp_max(self.vocab_size - 1) * (ids < self.vocab_size)
        if self.training and self.word_dropout > 0:
            ids = ids.masked_fill((torch.rand(ids.shape, device=ids.device) < self.word_dropout) & (ids > 1), 1)
        x = self.embedding(ids)
        if self.char_encoder is not None:
            if chars is None:
                raise ValueError("this MQAN reads characters (model.char_embedding_dim > 0) but the batch has none")
            x = torch.cat([x, self.char_encoder(chars)], -1)
        if self.features is not None:
            if sub is None:
                raise ValueError("this MQAN reads a pretrained encoder (model.pretrained) but the batch has no "
                                 "sub-tokens")
            x = torch.cat([x, self._word_states(length, sub).to(x.dtype)], -1)
        return self.dropout(x)

    def encode(self, context, c_mask, question, q_mask, chars=(None, None), sub=(None, None)):
        """-> final context (B, C, H) and question (B, Q, H) encodings. ``chars``: the context's and
        the question's character ids, (B, C, L) and (B, Q, L), when the model reads characters;
        ``sub``: their sub-tokens (:meth:`_word_states`), when it reads a pretrained encoder."""
        ec = self._embed(context, chars[0], sub[0])
        eq = self._embed(question, chars[1], sub[1])
        c = self.shared(ec, c_mask)
        q = self.shared(eq, q_mask)
        c, q = self.coattention(c, q, c_mask, q_mask)
        c = self.reduce_c(torch.cat([c, ec], -1), c_mask)                           # skip connection
        q = self.reduce_q(torch.cat([q, eq], -1), q_mask)
        c = self.self_attention_c(c, src_key_padding_mask=~c_mask)
        q = self.self_attention_q(q, src_key_padding_mask=~q_mask)
        return self.final_c(c, c_mask), self.final_q(q, q_mask)

    # ------------------------------------------------------------------ decoder
    def _embed_answer(self, prev: torch.Tensor) -> torch.Tensor:
        in_vocab = prev * (prev < self.vocab_size)                                  # copied OOV -> <pad>
        x = self.answer_embedding(self.embedding(in_vocab))
        return x + self.positions(torch.arange(prev.shape[1], device=prev.device))[None]

    def distributions(self, prev, enc_c, enc_q, c_ext, q_ext, c_mask, q_mask, extended_size: int):
        """p(w) over the extended vocabulary for every answer position: (B, A, V+)."""
        B, A = prev.shape
        causal = torch.triu(torch.ones(A, A, dtype=torch.bool, device=prev.device), diagonal=1)
        dec = self.decoder(self._embed_answer(prev), enc_c, tgt_mask=causal,
                           memory_key_padding_mask=~c_mask)                          # (B, A, H)
        H = dec.shape[-1]
        h = dec.new_zeros(B, H)
        cell = dec.new_zeros(B, H)
        ctx = dec.new_zeros(B, H)
        out = []
        steps = dec.unbind(1)           # one op whose backward is one stack; dec[:, t] per step
        for t in range(A):              # would give every step a full-size zero-filled gradient
            h, cell = self.cell(torch.cat([steps[t], ctx], -1), (h, cell))
            a_c, ctx = _attend(h, enc_c, c_mask)                                     # over the context
            a_q, q_vec = _attend(h, enc_q, q_mask)                                   # over the question
            features = torch.cat([h, ctx, q_vec], -1)
            p_vocab = torch.softmax(self.vocab_out(self.dropout(features)), -1)     # (B, V)
            p = F.pad(p_vocab, (0, extended_size - self.vocab_size))
            if self.pointers:
                gamma, lam = torch.sigmoid(self.switches(torch.cat([features, steps[t]], -1))).unbind(-1)
                p_ctx = p.new_zeros(B, extended_size).scatter_add_(1, c_ext, a_c)
                p_q = p.new_zeros(B, extended_size).scatter_add_(1, q_ext, a_q)
                p = gamma[:, None] * p + (1 - gamma)[:, None] * (lam[:, None] * p_ctx + (1 - lam)[:, None] * p_q)
            out.append(p)
        return torch.stack(out, 1)

    def forward(self, context, c_mask, question, q_mask, answer, a_mask, extended_size: int, chars=(None, None),
                sub=(None, None)):
        """Teacher-forced NLL of ``answer`` (B, A) (ids in the extended vocabulary; answer[:, 0]
        is the start symbol) -> (loss, distributions)."""
        enc_c, enc_q = self.encode(context, c_mask, question, q_mask, chars, sub)
        probs = self.distributions(answer[:, :-1], enc_c, enc_q, context, question, c_mask, q_mask,
                                   extended_size)                                    # (B, A-1, V+)
        target, mask = answer[:, 1:], a_mask[:, 1:]
        nll = -torch.log(probs.gather(2, target[..., None]).squeeze(-1).clamp_min(1e-12))
        return (nll * mask).sum() / mask.sum().clamp_min(1), probs

    @torch.no_grad()
    def greedy(self, context, c_mask, question, q_mask, start: int, end: int, max_length: int,
               extended_size: int, chars=(None, None), sub=(None, None)) -> torch.Tensor:
        """Greedy decoding -> (B, ≤ max_length) extended ids, without the start symbol."""
        enc_c, enc_q = self.encode(context, c_mask, question, q_mask, chars, sub)
        prev = torch.full((context.shape[0], 1), start, dtype=torch.long, device=context.device)
        done = torch.zeros(context.shape[0], dtype=torch.bool, device=context.device)
        for _ in range(max_length):
            p = self.distributions(prev, enc_c, enc_q, context, question, c_mask, q_mask, extended_size)
            nxt = p[:, -1].argmax(-1)
            prev = torch.cat([prev, nxt[:, None]], 1)
            done |= nxt == end
            if bool(done.all()):
                break
        return prev[:, 1:]

    @torch.no_grad()
    def beam_search(self, context, c_mask, question, q_mask, start: int, end: int, max_length: int,
                    extended_size: int, beam: int = 4, chars=(None, None), sub=(None, None)) -> list[list[int]]:
        """Beam search, one example at a time; returns the best sequence per example (no start)."""
        results = []
        for i in range(context.shape[0]):
            args = (context[i:i + 1], c_mask[i:i + 1], question[i:i + 1], q_mask[i:i + 1])
            one = tuple(None if part is None else tuple(t[i:i + 1] for t in part) for part in sub)
            enc_c, enc_q = self.encode(*args, tuple(c[i:i + 1] if c is not None else None for c in chars), one)
            beams = [([start], 0.0)]
            finished = []
            for _ in range(max_length):
                candidates = []
                for seq, score in beams:
                    prev = torch.tensor([seq], device=context.device)
                    p = self.distributions(prev, enc_c, enc_q, args[0], args[2], args[1], args[3],
                                           extended_size)[0, -1]
                    top = torch.topk(torch.log(p.clamp_min(1e-12)), beam)
                    candidates += [(seq + [int(w)], score + float(s)) for s, w in zip(top.values, top.indices)]
                candidates.sort(key=lambda c: c[1] / math.sqrt(len(c[0])), reverse=True)
                beams = []
                for seq, score in candidates[:beam]:
                    (finished if seq[-1] == end else beams).append((seq, score))
                if not beams:
                    break
            pool = finished or beams
            best = max(pool, key=lambda c: c[1] / math.sqrt(len(c[0])))
            results.append(best[0][1:])
        return results


@contextmanager
def first_answer_switches(net: MQAN):
    """Record the switches at the first answer word of every example decoded inside the block:
    yields a list that fills with (B, 2) tensors of γ (vocabulary rather than copying) and λ
    (copying from the context rather than the question). Read with forward hooks: the first
    decoder call of a greedy decode sees an answer of one word (the start symbol)."""
    seen: list = []
    first = [False]

    def on_decoder(module, args, out):           # args[0]: the answer so far, (B, A, H)
        first[0] = args[0].shape[1] == 1

    def on_switches(module, args, out):          # out: the logits of γ and λ, (B, 2)
        if first[0]:
            seen.append(torch.sigmoid(out).detach())
    hooks = [net.decoder.register_forward_hook(on_decoder), net.switches.register_forward_hook(on_switches)]
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


class MQANModel(MultiTaskModel):
    """MQAN behind polytask's model contract: it answers (``answer``, ``generate``) the qa tasks
    its config admits; nothing is task-specific.

    A :class:`~polytask.data.batching.QABatch` holds the context as ``tokens``, the question as
    ``tokens_b`` and the answer ids (``<s> … </s>``, extended vocabulary) as ``labels``.
    """

    def __init__(self, net: MQAN, tasks: list[TaskSpec], max_answer_length: int, beam: int = 1,
                 start: int = 2, end: int = 3):
        super().__init__(tasks)
        self.net, self.max_answer_length, self.beam = net, max_answer_length, beam
        self.start, self.end = start, end

    def _extended(self, batch: QABatch) -> int:
        """V+: V plus room for the out-of-vocabulary source words of the batch's example that has most."""
        return self.net.vocab_size + max((len(o) for o in batch.oov), default=0)

    @staticmethod
    def _subtokens(batch: QABatch) -> tuple:
        """The context's and the question's sub-tokens for the pretrained encoder (None without one)."""
        if batch.sub_tokens is None:
            return (None, None)
        return ((batch.sub_tokens, batch.sub_mask, batch.sub_starts, batch.sub_start_mask),
                (batch.sub_tokens_b, batch.sub_mask_b, batch.sub_starts_b, batch.sub_start_mask_b))

    def answer(self, batch: QABatch) -> TaskOutput:
        """With answers: the teacher-forced NLL and p(w) per answer position (B, A-1, V+) as
        logits; without: no loss and empty logits (B, 0) (answers come from :meth:`generate`)."""
        if batch.labels is None:
            return TaskOutput(logits=batch.tokens.new_zeros(batch.tokens.shape[0], 0).float())
        loss, probs = self.net(batch.tokens, batch.mask, batch.tokens_b, batch.mask_b, batch.labels,
                               batch.answer_mask, self._extended(batch), chars=(batch.chars, batch.chars_b),
                               sub=self._subtokens(batch))
        return TaskOutput(logits=probs, loss=loss, parts={"task": loss.detach()})

    @torch.no_grad()
    def generate(self, batch: QABatch) -> list[list[int]]:
        """Answer ids (extended vocabulary) per example, without <s> and </s>."""
        args = (batch.tokens, batch.mask, batch.tokens_b, batch.mask_b, self.start, self.end,
                self.max_answer_length, self._extended(batch))
        chars, sub = (batch.chars, batch.chars_b), self._subtokens(batch)
        if self.beam > 1:
            seqs = self.net.beam_search(*args, beam=self.beam, chars=chars, sub=sub)
        else:
            seqs = self.net.greedy(*args, chars=chars, sub=sub).tolist()
        return [seq[: seq.index(self.end)] if self.end in seq else seq for seq in seqs]

    def shared_parameters(self):
        return self.net.parameters()

    def task_parameters(self, task: str):
        return iter(())


def _builder(pointers: bool):
    def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
              num_chars: int = 0) -> MQANModel:
        m = cfg.model
        chars = build_char_encoder(m, num_chars) if m.char_embedding_dim > 0 else None
        features = build_pretrained_encoder(m, ("shared",) if m.adapter is not None else ()) if m.pretrained else None
        net = MQAN(vocab_size, m.embedding_dim, m.encoder.hidden_dim, m.encoder.num_layers,
                   m.encoder.num_heads, m.dropout, pointers=pointers, char_encoder=chars,
                   word_dropout=m.word_dropout, features=features)
        if vectors is not None:
            with torch.no_grad():
                net.embedding.weight.copy_(vectors)
        return MQANModel(net, tasks, m.max_answer_length, m.beam_size)
    return build


build_mqan = _builder(True)
build_seq2seq = _builder(False)


ARCHITECTURES = {"mqan": (MQANConfig, build_mqan), "seq2seq": (MQANConfig, build_seq2seq)}
