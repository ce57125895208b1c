"""Data: readers, vocabularies, batching, word vectors, downloads."""
from .batching import Batch, Encoded, PairBatch, QABatch, TaskBatchIterator, eval_batches
from .readers import DataError, Example, read_fdu, read_table, tokenize
from .vocab import Vocab

__all__ = ["Batch", "Encoded", "PairBatch", "QABatch", "TaskBatchIterator", "eval_batches", "DataError",
           "Example", "read_fdu", "read_table", "tokenize", "Vocab"]
