"""Metrics, evaluation loops and result tables."""
from .evaluate import evaluate_model, predict_items
from .tables import format_table

__all__ = ["evaluate_model", "predict_items", "format_table"]
