"""Every architecture gives the outputs saved from the code before the contracts redesign.

``tests/golden/golden.safetensors`` holds, per architecture, the weights of a tiny model and its
eval-mode outputs (logits, losses and their parts, decoded tags, generated answers) on fixed
batches (``tests/golden/cases.py``). A refactor may change how a model is built or called, not
what it computes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))
from cases import ARCHITECTURES, build, golden_batches, outputs  # noqa: E402

SAVED = load_file(str(GOLDEN / "golden.safetensors"))


def saved(arch: str, part: str) -> dict[str, torch.Tensor]:
    prefix = f"{arch}/{part}/"
    return {k[len(prefix):]: v for k, v in SAVED.items() if k.startswith(prefix)}


def test_every_architecture_has_golden_outputs():
    assert sorted({k.split("/")[0] for k in SAVED}) == ARCHITECTURES


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_same_outputs_on_the_same_weights(arch):
    torch.manual_seed(1234)                  # other weights than the saved ones: loading must set all
    model, tasks = build(arch)
    model.load_state_dict(saved(arch, "weights"), strict=True)
    got = outputs(model, golden_batches(tasks))
    want = saved(arch, "outputs")
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=lambda m: f"{arch} {key}: {m}")
