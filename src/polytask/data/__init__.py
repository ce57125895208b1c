"""Data: readers, tasks, vocabularies, batching, word vectors, downloads."""
from .batching import Batch, TaskBatchIterator, collate, encode_examples, eval_batches
from .readers import DataError, Example, read_fdu, read_table, tokenize
from .task import Task, load_task, load_unlabeled
from .vocab import Vocab

__all__ = ["Batch", "TaskBatchIterator", "collate", "encode_examples", "eval_batches", "DataError",
           "Example", "read_fdu", "read_table", "tokenize", "Task", "load_task", "load_unlabeled",
           "Vocab"]
