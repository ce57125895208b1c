"""Fast kernels: hand-written autograd recurrences, each beside a plain-autograd reference that
computes the same thing step by step (the tests hold the kernel to its reference and to
``gradcheck``). Kernels take tensors, never modules: the models prepare their weights and call
them, so the dependency runs models -> ops only."""
from __future__ import annotations

from .memory_recurrence import MemoryRecurrence, memory_lstm_recurrence, reference_memory_lstm_recurrence
from .meta_recurrence import MetaRecurrence, meta_lstm_recurrence, reference_meta_lstm_recurrence

__all__ = ["MemoryRecurrence", "memory_lstm_recurrence", "reference_memory_lstm_recurrence",
           "MetaRecurrence", "meta_lstm_recurrence", "reference_meta_lstm_recurrence"]
