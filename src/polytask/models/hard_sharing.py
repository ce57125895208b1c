"""Hard parameter sharing, FS-MTL (Caruana 1997; Liu, Qiu, Huang ACL 2017 §3 "FS-MTL").

One embedding and one encoder serve every task; each task has only its own output layer:

    s = pool(Encoder(Embed(x)))          shared by all tasks
    ŷ = softmax(W^k s + b^k)             task k

Tagging tasks read the encoder's per-token states instead of the pooled vector, so sentence-level
and token-level tasks share one encoder.

With ``model.pretrained`` the shared encoder is a pretrained Transformer fine-tuned under every
task's head: MT-DNN (Liu, He, Chen, Gao, ACL 2019), pairs cross-encoded as one input. With
``model.adapter`` the encoder carries LoRA adapters: one shared by every task, or one per task
(``per_task``: task k reads the shared encoder through its own adapter, which is then its own
parameter, like its head).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..modules import SentenceEncoder, build_encoder
from ..modules.embeddings import build_embedding
from .contract import Encoding, MultiTaskModel, TaskSpec, Text, task_head
from .pretrained_encoder import PretrainedModelConfig, adapter_names, build_pretrained_encoder


class HardSharingModel(MultiTaskModel):
    """One encoder (word vectors + an encoder, or a pretrained model) under every task's head."""

    def __init__(self, encoder: nn.Module, tasks: list[TaskSpec], dropout: float, per_task_adapters: bool = False):
        super().__init__(tasks)
        self.encoder, self.per_task_adapters = encoder, per_task_adapters
        self.heads = nn.ModuleDict({t.name: task_head(t, encoder.output_dim, dropout, encoder.cross_encodes_pairs)
                                    for t in tasks})

    def encode(self, task: str, text: Text) -> Encoding:
        if self.per_task_adapters:
            self.encoder.select(task)                                         # the task's own LoRA adapter
        states = self.encoder.text_states(text)                               # (B, T, H), every task
        return Encoding(states, text.mask, pool=self.encoder.pool)

    def shared_parameters(self):
        if not self.per_task_adapters:
            return self.encoder.parameters()
        private = {id(p) for p in self.encoder.adapter_parameters()}
        return (p for p in self.encoder.parameters() if id(p) not in private)

    def task_parameters(self, task: str):
        yield from self.heads[task].parameters()
        if self.per_task_adapters:
            yield from self.encoder.adapter_parameters(task)


def build(cfg, tasks: list[TaskSpec], vocab_size: int, vectors: Optional[torch.Tensor] = None,
          num_chars: int = 0) -> HardSharingModel:
    m = cfg.model
    if m.pretrained:
        encoder = build_pretrained_encoder(m, adapter_names(m, tasks))
        return HardSharingModel(encoder, tasks, m.dropout, per_task_adapters=m.adapter is not None and m.adapter.per_task)
    embedding = build_embedding(m, vocab_size, vectors, num_chars)
    encoder = SentenceEncoder(embedding, build_encoder(m.encoder, embedding.output_dim), m.pooling)
    return HardSharingModel(encoder, tasks, m.dropout)


ARCHITECTURES = {"hard_sharing": (PretrainedModelConfig, build)}
