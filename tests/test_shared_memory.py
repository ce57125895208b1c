"""Shared external memory: read/write semantics, masking, gradients to the shared memory."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import classes

from polytask.config import load_config
from polytask.data.batching import Encoded, collate_text as collate
from polytask.models import build_model
from polytask.models.shared_memory import ExternalMemory, MemoryLSTM, memory_read, memory_write
from polytask.runner import train


def test_read_is_softmax_of_sharpened_cosine():
    memory = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])                 # (1, K=2, M=2)
    alpha, r = memory_read(memory, torch.tensor([[3.0, 0.0]]), torch.tensor(2.0))
    w0 = math.exp(2.0) / (math.exp(2.0) + 1.0)                        # cos = 1 and 0, β = 2
    torch.testing.assert_close(alpha, torch.tensor([[w0, 1 - w0]]))
    torch.testing.assert_close(r, torch.tensor([[w0, 2 * (1 - w0)]]))


def test_write_erases_then_adds():
    memory = torch.tensor([[[1.0, 1.0], [2.0, 2.0]]])
    alpha = torch.tensor([[1.0, 0.0]])
    out = memory_write(memory, alpha, erase=torch.tensor([[1.0, 0.0]]), add=torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(out, torch.tensor([[[0.5, 1.5], [2.0, 2.0]]]))
    half = memory_write(memory, torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 0.0]]))
    torch.testing.assert_close(half, memory * 0.5)


def test_padding_changes_neither_outputs_nor_memory():
    torch.manual_seed(0)
    mems = [ExternalMemory(6, 4, 3), ExternalMemory(6, 4, 3)]
    cell = MemoryLSTM(5, 6, [3, 3])
    x = torch.randn(2, 6, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    out, gates, final = cell(x, mask, mems)
    alone_out, alone_gates, alone_final = cell(x[:1, :3], mask[:1, :3], mems)
    torch.testing.assert_close(out[:1, :3], alone_out)
    for a, b in zip(final, alone_final):
        torch.testing.assert_close(a[:1], b)                          # memory after 3 real steps
    assert out[0, 3:].abs().sum() == 0 and gates[1][0, 3:].abs().sum() == 0
    assert not torch.allclose(final[0][1], mems[0].initial)           # real steps do write


def tiny_model(architecture: str, fdu_config):
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": architecture,
                                   "memory_slots": 4, "memory_width": 3}}
    torch.manual_seed(0)
    return build_model(load_config(raw=raw), [classes("a", 2), classes("b", 2)], vocab_size=12)


@pytest.mark.parametrize("architecture", ["shared_memory_arc1", "shared_memory_arc2"])
def test_every_task_trains_the_shared_memory(architecture, fdu_config):
    model = tiny_model(architecture, fdu_config)
    shared = list(model.global_memory.parameters())
    assert {id(p) for p in shared} <= {id(p) for p in model.shared_parameters()}
    for task in ("a", "b"):
        model.zero_grad()
        batch = collate(task, [Encoded([2, 3, 4], None, 1), Encoded([5, 6], None, 0)])
        out = model(batch)
        out.loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in shared), task
        assert out.inspected()["fusion_global"].shape == (2, 3, fdu_config["model"]["encoder"]["hidden_dim"])
        other = "b" if task == "a" else "a"
        assert all(p.grad is None for p in model.cells[other].parameters())


@pytest.mark.parametrize("architecture, keys", [("me_lstm", ["fusion_local"]),
                                               ("shared_memory_arc1", ["fusion_global"]),
                                               ("shared_memory_arc2", ["fusion_global", "fusion_local"])])
def test_inspect_gives_the_fusion_gate_of_each_memory(architecture, keys, fdu_config):
    """fusion_global unless ME-LSTM (no global memory), fusion_local unless ARC-I (no local one)."""
    model = tiny_model(architecture, fdu_config).eval()
    batch = collate("a", [Encoded([2, 3, 4], None, 1), Encoded([5, 6], None, 0)])
    inspected = model(batch).inspected()
    assert list(inspected) == keys
    _, gates, _ = model.cells["a"](model.embedding(batch.tokens), batch.mask, model.memories("a"))
    cell = {"fusion_local": gates[0], "fusion_global": gates[-1]}             # local memory first
    for key in keys:
        torch.testing.assert_close(inspected[key], cell[key], atol=0, rtol=0)


def test_arc2_fits_the_toy_tasks(fdu_config):
    """The two-task toy is overfit (train loss near 0) and dev is well above chance (50%).

    With 50 training sentences the memory models memorise more than a plain LSTM does, so dev
    (10 sentences per task) is not asked to be perfect.
    """
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": "shared_memory_arc2",
                                   "memory_slots": 8, "memory_width": 8, "dropout": 0.3},
           "trainer": {**fdu_config["trainer"], "max_steps": 300, "eval_every": 50}}
    results = train(load_config(raw=raw), quiet=True)
    last = json.loads((Path(raw["output_dir"]) / "metrics.jsonl").read_text().splitlines()[-1])
    assert max(last["train_loss"].values()) < 0.05, last
    assert results["dev_avg"] >= 80.0, results


def test_fusion_gates_can_be_dumped_per_example(fdu_config, tmp_path):
    from polytask.cli import main
    raw = {**fdu_config, "model": {**fdu_config["model"], "architecture": "shared_memory_arc2",
                                   "memory_slots": 4, "memory_width": 4},
           "trainer": {**fdu_config["trainer"], "max_steps": 20, "eval_every": 20}}
    train(load_config(raw=raw), quiet=True)
    texts = tmp_path / "in.txt"
    texts.write_text("the movie was good\nit was bad\n")
    out = tmp_path / "gates.jsonl"
    assert main(["inspect", raw["output_dir"], "--task", "a", "--input", str(texts), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["tokens"] == ["the", "movie", "was", "good"]
    gates = rows[0]["inspect"]["fusion_global"]                 # (T, H), values in (0, 1)
    assert len(gates) == 4 and all(0.0 < g < 1.0 for row in gates for g in row)


@pytest.mark.parametrize("n_memories", [1, 2])
def test_stacked_step_equals_the_step_as_written(n_memories):
    """forward (memories stacked, projections batched) against forward_reference: outputs, gates,
    final memories and every gradient, with padding."""
    torch.manual_seed(3)
    mems = [ExternalMemory(6, 4, 3, sharpness=2.0) for _ in range(n_memories)]
    cell = MemoryLSTM(5, 6, [3] * n_memories)
    x = torch.randn(3, 7, 5)
    mask = torch.tensor([[1] * 4 + [0] * 3, [1] * 7, [1] * 2 + [0] * 5], dtype=torch.bool)
    params = [*cell.parameters(), *(p for m in mems for p in m.parameters())]
    results = []
    for fn in (cell.forward, cell.forward_reference):
        out, gates, final = fn(x, mask, mems)
        loss = (out ** 2).sum() + sum(g.sum() for g in gates) + sum((f ** 2).sum() for f in final)
        results.append((out, gates, final, torch.autograd.grad(loss, params)))
    (o1, g1, f1, d1), (o2, g2, f2, d2) = results
    torch.testing.assert_close(o1, o2, atol=1e-5, rtol=1e-5)
    for a, b in [*zip(g1, g2), *zip(f1, f2), *zip(d1, d2)]:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_hand_written_backward_through_time_passes_gradcheck():
    """The memory recurrence's backward is derived by hand: check it numerically (float64), with a
    padded sequence so masked steps are covered."""
    from polytask.ops import MemoryRecurrence
    torch.manual_seed(0)
    T, B, J, K, M, H = 4, 2, 2, 3, 2, 3
    keep = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])[..., None]     # (T, B, 1)
    args = [torch.randn(T, B, 4 * H), keep, torch.randn(J, B, K, M), torch.randn(H, 4 * H) * 0.5,
            torch.randn(H, J * H) * 0.5, torch.randn(J * H) * 0.1, torch.randn(J, M, 2 * H) * 0.5,
            torch.randn(J, H, 3 * M) * 0.5, torch.randn(J, 1, 3 * M) * 0.1, torch.tensor([1.5, 0.7]).view(J, 1, 1)]
    args = [a.double().requires_grad_(i != 1) for i, a in enumerate(args)]
    assert torch.autograd.gradcheck(MemoryRecurrence.apply, args, eps=1e-6, atol=1e-5)


def test_kernel_equals_its_reference_recurrence():
    """ops: the memory recurrence against the same recurrence in plain autograd, on the kernel's
    own inputs with padding: outputs, gates, final memories and the gradient of every input."""
    from polytask.ops import memory_lstm_recurrence, reference_memory_lstm_recurrence
    torch.manual_seed(5)
    T, B, J, K, M, H = 5, 3, 2, 4, 3, 4
    keep = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    keep = keep[..., None]                                                  # (T, B, 1)
    args = [torch.randn(T, B, 4 * H), keep, torch.randn(J, B, K, M), torch.randn(H, 4 * H) * 0.5,
            torch.randn(H, J * H) * 0.5, torch.randn(J * H) * 0.1, torch.randn(J, M, 2 * H) * 0.5,
            torch.randn(J, H, 3 * M) * 0.5, torch.randn(J, 1, 3 * M) * 0.1, torch.tensor([1.5, 0.7]).view(J, 1, 1)]
    args = [a.double().requires_grad_(i != 1) for i, a in enumerate(args)]
    learned = [a for i, a in enumerate(args) if i != 1]
    fast, slow = memory_lstm_recurrence(*args), reference_memory_lstm_recurrence(*args)
    weights = [torch.randn_like(v) for v in slow]
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a.double(), b, atol=1e-5, rtol=1e-5)
    d_fast = torch.autograd.grad(sum((a.double() * w).sum() for a, w in zip(fast, weights)), learned)
    d_slow = torch.autograd.grad(sum((b * w).sum() for b, w in zip(slow, weights)), learned)
    for a, b in zip(d_fast, d_slow):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
