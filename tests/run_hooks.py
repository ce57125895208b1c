"""Hooks into a running trainer for the tests of interrupted and failing runs."""
from __future__ import annotations

from unittest import mock

import polytask.runner as runner
from polytask.config import load_config
from polytask.training.callbacks import Callback
from polytask.training.trainer import Trainer


def train_with(raw: dict, *extra: Callback, resume: bool = False) -> dict:
    """``runner.train`` on the raw config with ``extra`` callbacks after the default ones."""
    class ExtendedTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.callbacks.callbacks.extend(extra)

    with mock.patch.object(runner, "Trainer", ExtendedTrainer):
        return runner.train(load_config(raw=raw), quiet=True, resume=resume)
