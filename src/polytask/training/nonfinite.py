"""The non-finite guard's pieces: the error that stops a run, and the check of a state's tensors.

The trainer checks each step's losses (and the gradient norm it computes for clipping) and, at
each evaluation, the weights; ``best/`` and ``last/`` refuse non-finite weights when written, so
they always hold the last finite state.
"""
from __future__ import annotations

from typing import Iterable

import torch

from ..errors import PolytaskError


class NonFiniteError(PolytaskError, ValueError):
    """A loss, gradient norm or weight became NaN or infinite; training stopped.

    Attributes:
        step: the step (1-based) whose loss or gradient was not finite, or the step evaluated.
        tasks: the tasks of that step (empty for weights).
        what: ``"loss"``, ``"gradient norm"`` or ``"weights"``.
    """

    def __init__(self, message: str, step: int = 0, tasks: Iterable[str] = (), what: str = ""):
        super().__init__(message)
        self.step, self.tasks, self.what = step, list(tasks), what


def nonfinite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors in ``state`` that hold a NaN or an infinity."""
    return [name for name, t in state.items()
            if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())]


def refuse_nonfinite(state: dict[str, torch.Tensor], where: str) -> None:
    """Raise :class:`NonFiniteError` if a tensor of ``state``, about to be written to ``where``,
    is not finite."""
    bad = nonfinite_tensors(state)
    if bad:
        raise NonFiniteError(f"{where}: not written: {len(bad)} of {len(state)} weight tensors are not finite "
                             f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})", what="weights")
