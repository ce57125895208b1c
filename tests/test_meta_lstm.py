"""Meta-LSTM: the fast pass equals the equations written out, and the model learns."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from polytask.config import load_config
from polytask.models.meta_lstm import BasicLSTM, MetaLSTM, meta_lstm_pass, reference_meta_lstm
from polytask.runner import train


def test_fast_pass_matches_reference_to_1e5():
    torch.manual_seed(0)
    meta, basic = MetaLSTM(6, 5, 4, 3), BasicLSTM(6, 5, 2, 3)
    x = torch.randn(3, 7, 6)
    fast = meta_lstm_pass(x, meta, basic)
    slow = reference_meta_lstm(x, meta, basic)
    assert fast.shape == (3, 7, 5)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    # gradients agree too
    g_fast = torch.autograd.grad(fast.sum(), [basic.p, meta.w_z])
    g_slow = torch.autograd.grad(slow.sum(), [basic.p, meta.w_z])
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_hand_written_backward_through_time_passes_gradcheck():
    """The recurrence's backward is derived by hand: check every input's gradient numerically
    (float64), and every parameter's gradient against autograd through the reference."""
    from polytask.ops import MetaRecurrence
    torch.manual_seed(0)
    T, K, B, M, R, H = 4, 2, 2, 3, 2, 5                       # K = 2 passes run side by side
    args = [torch.randn(T, K, B, 4 * M), torch.randn(T, K, B, 4 * R), torch.randn(K, H, 4 * M + 4 * R) * 0.5,
            torch.randn(K, M, 4 * M) * 0.5, torch.randn(K, M, 4 * R + 4 * H) * 0.5, torch.randn(K, 4, H, R) * 0.5]
    args = [a.double().requires_grad_() for a in args]
    assert torch.autograd.gradcheck(MetaRecurrence.apply, args, eps=1e-6, atol=1e-6)
    meta, basic = MetaLSTM(6, 5, 4, 3), BasicLSTM(6, 5, 2, 3)
    x = torch.randn(3, 7, 6, requires_grad=True)
    params = [x, *meta.parameters(), *basic.parameters()]
    weights = torch.randn(3, 7, 5)
    fast = torch.autograd.grad((meta_lstm_pass(x, meta, basic) * weights).sum(), params)
    slow = torch.autograd.grad((reference_meta_lstm(x, meta, basic) * weights).sum(), params)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_kernel_equals_its_reference_recurrence():
    """ops: the fused recurrence against the same recurrence in plain autograd, on the kernel's own
    inputs (float64): outputs and the gradient of every input."""
    from polytask.ops import meta_lstm_recurrence, reference_meta_lstm_recurrence
    torch.manual_seed(4)
    T, K, B, M, R, H = 5, 2, 3, 3, 2, 4
    args = [torch.randn(T, K, B, 4 * M), torch.randn(T, K, B, 4 * R), torch.randn(K, H, 4 * M + 4 * R) * 0.5,
            torch.randn(K, M, 4 * M) * 0.5, torch.randn(K, M, 4 * R + 4 * H) * 0.5, torch.randn(K, 4, H, R) * 0.5]
    args = [a.double().requires_grad_() for a in args]
    weights = torch.randn(T, K, B, H, dtype=torch.float64)
    fast, slow = meta_lstm_recurrence(*args), reference_meta_lstm_recurrence(*args)
    assert fast.dtype == torch.float32 and slow.dtype == torch.float64       # the kernel runs in float32
    torch.testing.assert_close(fast.double(), slow, atol=1e-5, rtol=1e-5)
    d_fast = torch.autograd.grad((fast.double() * weights).sum(), args)
    d_slow = torch.autograd.grad((slow * weights).sum(), args)
    for a, b in zip(d_fast, d_slow):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_passes_run_side_by_side_equal_passes_run_alone():
    from polytask.models.meta_lstm import meta_lstm_passes
    torch.manual_seed(2)
    metas = [MetaLSTM(6, 5, 4, 3), MetaLSTM(6, 5, 4, 3)]
    basics = [BasicLSTM(6, 5, 2, 3), BasicLSTM(6, 5, 2, 3)]
    xs = [torch.randn(3, 7, 6), torch.randn(3, 7, 6)]
    together = meta_lstm_passes(xs, metas, basics)
    for x, m, b, h in zip(xs, metas, basics, together):
        torch.testing.assert_close(h, reference_meta_lstm(x, m, b), atol=1e-5, rtol=1e-5)
    g = torch.autograd.grad(sum((h * h).sum() for h in together), [*metas[1].parameters(), *basics[0].parameters()])
    r = torch.autograd.grad(sum((reference_meta_lstm(x, m, b) ** 2).sum() for x, m, b in zip(xs, metas, basics)),
                            [*metas[1].parameters(), *basics[0].parameters()])
    for a, b in zip(g, r):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_meta_lstm_model_learns_and_shares_only_the_meta_network(fdu_config):
    raw = dict(fdu_config)
    raw["model"] = {**raw["model"], "architecture": "meta_lstm", "meta_hidden_dim": 16, "meta_dim": 16,
                    "meta_rank": 16}
    raw["trainer"] = {**raw["trainer"], "max_steps": 300, "eval_every": 50}
    results = train(load_config(raw=raw), quiet=True)
    assert min(results["dev"].values()) >= 89.99, results
    from polytask.runner import load_run
    model = load_run(raw["output_dir"]).model
    shared = {id(p) for p in model.shared_parameters()}
    for task in ("a", "b"):
        own = {id(p) for p in model.task_parameters(task)}
        assert own and not own & shared
    assert {id(p) for p in model.encoder.meta_fwd.parameters()} <= shared


def test_meta_lstm_padding_does_not_change_real_positions():
    from polytask.models.meta_lstm import MetaLSTMEncoder
    torch.manual_seed(1)
    enc = MetaLSTMEncoder(["a"], 4, 3, 5, 2, 2)
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    padded = enc("a", x, mask)
    alone = enc("a", x[:1, :3], mask[:1, :3])
    torch.testing.assert_close(padded[:1, :3], alone, atol=1e-6, rtol=1e-6)
    assert padded[0, 3:].abs().sum() == 0


def test_transfer_freezes_the_meta_lstm_and_trains_a_new_task(fdu_config, tmp_path):
    import yaml
    from polytask.cli import main
    from polytask.runner import load_run
    from polytask.training.checkpoint import read_weights
    raw = dict(fdu_config)
    raw["model"] = {**raw["model"], "architecture": "meta_lstm", "meta_hidden_dim": 16, "meta_dim": 16,
                    "meta_rank": 16}
    train(load_config(raw=raw), quiet=True)
    # a task the source run never saw (its words are in the vocabulary: b's files, a new name)
    new = {**fdu_config, "tasks": [{"name": "c", "train": "fdu/b.task.train", "test": "fdu/b.task.test"}],
           "output_dir": str(tmp_path / "transfer")}
    new.pop("model")
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new))
    assert main(["transfer", raw["output_dir"], "--task", str(tmp_path / "new.yaml"), "--quiet",
                 "trainer.max_steps=200", "trainer.eval_every=50"]) == 0
    before = read_weights(Path(raw["output_dir"]) / "best" / "model.safetensors")
    after = read_weights(tmp_path / "transfer" / "best" / "model.safetensors")
    for name in before:
        if name.startswith(("encoder.meta_", "embedding.")):
            assert torch.equal(before[name], after[name]), name      # frozen
    assert any(name.startswith("encoder.basic_fwd.c.") for name in after)
    results = json.loads((tmp_path / "transfer" / "results.json").read_text())
    assert results["dev"]["c"] >= 89.99, results
    assert load_run(tmp_path / "transfer").task_info.keys() == {"c"}


def test_recurrence_runs_under_bf16_autocast():
    """trainer.precision: bf16 puts the input projections in bfloat16; the loop runs in float32."""
    from polytask.models.meta_lstm import MetaLSTMEncoder
    torch.manual_seed(0)
    enc = MetaLSTMEncoder(["a"], 6, 5, 4, 3, 2)
    x = torch.randn(2, 4, 6, requires_grad=True)
    mask = torch.ones(2, 4, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc("a", x, mask)
    out.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in enc.meta_fwd.parameters())
