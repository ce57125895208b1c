"""One task of a trained run as an ONNX or TorchScript model of plain tensors (``polytask export``)."""
from .writer import ExportError, export_task, viterbi_numpy

__all__ = ["ExportError", "export_task", "viterbi_numpy"]
