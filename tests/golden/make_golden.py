"""Write the golden outputs every architecture gives on fixed weights and fixed batches.

Run once on the code before a refactor (``python tests/golden/make_golden.py``); the test
``tests/test_golden_outputs.py`` then rebuilds each architecture, loads the saved weights and
checks that its logits, losses and decoded tags are unchanged.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import ARCHITECTURES, build, golden_batches, outputs  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    out: dict[str, torch.Tensor] = {}
    for arch in ARCHITECTURES:
        torch.manual_seed(0)
        model, tasks = build(arch)
        for name, value in model.state_dict().items():
            out[f"{arch}/weights/{name}"] = value.detach().clone().contiguous()
        for key, value in outputs(model, golden_batches(tasks)).items():
            out[f"{arch}/outputs/{key}"] = value.detach().clone().contiguous()
        print(arch, ", ".join(tasks))
    save_file(out, str(Path(__file__).resolve().parent / "golden.safetensors"))


if __name__ == "__main__":
    main()
