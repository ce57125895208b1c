"""HTTP inference for a trained run."""
from .http import make_server

__all__ = ["make_server"]
