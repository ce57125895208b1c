"""Transitional: the priors moved to :mod:`polytask.models.priors` (model maths lives with the
models). Only ``soft_sharing`` still imports them from here; delete this file when its import
reads ``from .priors import l2_distance_penalty, trace_norm_penalty``."""
from __future__ import annotations

from ..models.priors import l2_distance_penalty, trace_norm_penalty

__all__ = ["l2_distance_penalty", "trace_norm_penalty"]
