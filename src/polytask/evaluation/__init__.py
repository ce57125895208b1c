"""Metrics, result tables and reports. (The evaluation loop, :mod:`polytask.evaluation.evaluate`,
runs models through their tasks' kinds and is imported on its own.)"""
from .metrics import METRICS, compute
from .tables import format_table

__all__ = ["METRICS", "compute", "format_table"]
