"""Loss weightings and gradient aggregators behind the trainer's weighting interface."""
from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import classes
from torch import nn

import polytask.runner as runner
from polytask.config import ConfigError, load_config
from polytask.runner import train
from polytask.training.checkpoint import read_weights
from polytask.training.trainer import Trainer
from polytask.training.weighting import (DynamicWeightAverage, JacobianAggregation, RandomLossWeighting,
                                         UncertaintyWeighting)


class TwoLosses(nn.Module):
    """A shared vector w and one private scalar per task; losses chosen so that the gradients on
    w are g_a = (1, 0) and g_b = (-1, 1)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))
        self.own = nn.ParameterDict({"a": nn.Parameter(torch.tensor(1.0)), "b": nn.Parameter(torch.tensor(1.0))})

    def losses(self):
        return {"a": self.w[0] + self.own["a"] ** 2, "b": -self.w[0] + self.w[1] + 3 * self.own["b"]}

    def shared_parameters(self):
        return iter([self.w])

    def task_parameters(self, task):
        return iter([self.own[task]])


def test_pcgrad_through_polytask_matches_the_hand_computed_projection():
    pytest.importorskip("torchjd")
    from torchjd.aggregation import PCGrad
    model = TwoLosses()
    JacobianAggregation(PCGrad(), "pcgrad").backward(model.losses(), model)
    # g_a·g_b = -1 < 0: g_a -> g_a - (-1/2) g_b = (0.5, 0.5); g_b -> g_b - (-1/1) g_a = (0, 1); sum
    torch.testing.assert_close(model.w.grad, torch.tensor([0.5, 1.5]))
    assert model.own["a"].grad.item() == pytest.approx(2.0) and model.own["b"].grad.item() == pytest.approx(3.0)


def test_mgda_gives_the_min_norm_point():
    pytest.importorskip("torchjd")
    from torchjd.aggregation import MGDA
    model = TwoLosses()
    JacobianAggregation(MGDA(), "mgda").backward(model.losses(), model)
    # min over λ of |λ g_a + (1-λ) g_b|²: λ = 0.6 -> (0.2, 0.4)
    torch.testing.assert_close(model.w.grad, torch.tensor([0.2, 0.4]), atol=1e-4, rtol=1e-4)


def test_dwa_weights_follow_the_loss_ratio():
    dwa = DynamicWeightAverage(["a", "b"], temperature=2.0, window=1)
    w = nn.Parameter(torch.tensor(1.0))
    for la, lb in [(1.0, 1.0), (0.5, 1.0)]:
        dwa.backward({"a": w * la, "b": w * lb}, None)
    ra, rb = 0.5 / 1.0, 1.0 / 1.0
    za = math.exp(ra / 2)
    expected_a = 2 * za / (za + math.exp(rb / 2))
    assert dwa.weights()["a"] == pytest.approx(expected_a)
    restored = DynamicWeightAverage(["a", "b"], 2.0, 1)
    restored.load_extra_state(dwa.extra_state())
    assert restored.weights() == dwa.weights()


def test_uncertainty_weighting_learns_log_variances():
    weighting = UncertaintyWeighting(["a", "b"])
    w = nn.Parameter(torch.tensor(2.0))
    used = weighting.backward({"a": w * 1.0, "b": w * 3.0}, None)
    assert used == {"a": 1.0, "b": 1.0}
    # d/ds (exp(-s) L + s) at s = 0 is 1 - L
    assert weighting.log_vars["a"].grad.item() == pytest.approx(1 - 2.0)
    assert weighting.log_vars["b"].grad.item() == pytest.approx(1 - 6.0)


def test_rlw_state_round_trip_gives_the_same_weights():
    first = RandomLossWeighting(["a", "b"], seed=3)
    w = nn.Parameter(torch.tensor(1.0))
    first.backward({"a": w, "b": w}, None)
    second = RandomLossWeighting(["a", "b"], seed=99)
    second.load_extra_state(first.extra_state())
    assert first.backward({"a": w, "b": w}, None) == second.backward({"a": w, "b": w}, None)


def test_gradient_methods_need_all_tasks_per_step(fdu_config):
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "weighting": "upgrad"}}
    with pytest.raises(ConfigError, match="step_mode: all_tasks"):
        load_config(raw=raw)
    raw["trainer"]["weighting"] = "magic"
    with pytest.raises(ConfigError, match="trainer.weighting"):
        load_config(raw=raw)


@pytest.mark.parametrize("method", ["upgrad", "uncertainty", "dwa"])
def test_all_tasks_mode_trains_with_each_method(fdu_config, method):
    if method == "upgrad":
        pytest.importorskip("torchjd")
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "step_mode": "all_tasks", "weighting": method,
                                     "max_steps": 80, "weighting_options": {"window": 10} if method == "dwa" else {}}}
    results = train(load_config(raw=raw), quiet=True)
    assert results["dev_avg"] >= 89.99, results


def test_gradnorm_raises_the_weight_of_the_task_that_trains_slower():
    from polytask.training.weighting import GradNorm
    model = TwoLosses()
    gn = GradNorm(["a", "b"], alpha=1.0)
    gn.backward(model.losses(), model)                      # first step fixes the initial losses
    model.zero_grad()
    gn.weights.zero_grad()
    # task a's loss has not moved while b's halved: a trains slower, so its target norm is above
    # its norm (G_a = 1 < 0.854 · 4/3) and b's below (G_b = 0.707 > 0.854 · 2/3): w_a up, w_b down
    losses = {"a": model.losses()["a"], "b": 0.5 * model.losses()["b"]}
    gn.backward(losses, model)
    assert gn.weights["a"].grad.item() < 0 < gn.weights["b"].grad.item()


@pytest.mark.parametrize("method", ["upgrad", "mgda", "pcgrad"])
def test_per_task_jacobian_equals_torchjds_own_backward(fdu_config, method):
    """JacobianAggregation differentiates each task's loss through its own graph and aggregates from
    the summed Gramians; the gradients must equal TorchJD's autojac.backward of the stacked losses
    followed by jac_to_grad on the concatenated Jacobian."""
    pytest.importorskip("torchjd")
    from torchjd.aggregation import MGDA, PCGrad, UPGrad
    aggregator = {"upgrad": UPGrad, "mgda": MGDA, "pcgrad": PCGrad}[method]
    from torchjd.autojac import backward as jac_backward, jac_to_grad

    from polytask.data.batching import Encoded, collate_text as collate
    from polytask.models import TaskSpec, build_model
    torch.manual_seed(0)
    tasks = ["a", "b", "c"]
    model = build_model(load_config(raw=fdu_config), [classes(t, 2) for t in tasks], vocab_size=20)
    batches = {t: collate(t, [Encoded([2 + i, 5, 7 + k], None, (i + k) % 2) for i in range(3)])
               for k, t in enumerate(tasks)}

    def losses():
        return {t: model(b).loss for t, b in batches.items()}
    model.eval()                                             # no dropout: both passes see one function
    torch.manual_seed(1)                                     # PCGrad projects in a random task order
    weights = JacobianAggregation(aggregator(), method).backward(losses(), model)
    ours = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)

    out = losses()
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    own = [p for t in tasks for p in model.task_parameters(t) if p.requires_grad]
    torch.autograd.backward(sum(out.values()), inputs=own, retain_graph=True)
    jac_backward([out[t] for t in tasks], inputs=shared)
    torch.manual_seed(1)
    reference_weights = jac_to_grad(shared, aggregator())
    reference = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert ours.keys() == reference.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], reference[name], atol=1e-6, rtol=1e-5, msg=name)
    assert list(weights.values()) == pytest.approx(reference_weights.tolist(), abs=1e-6)


class CrossTaskLayer(TwoLosses):
    """Task b's loss also reads task a's own parameter (as JMT's upper tasks read the lower head)."""

    def losses(self):
        out = super().losses()
        return {**out, "b": out["b"] + 5 * self.own["a"]}


def test_task_parameters_get_every_tasks_gradient():
    pytest.importorskip("torchjd")
    from torchjd.aggregation import UPGrad
    model = CrossTaskLayer()
    JacobianAggregation(UPGrad(), "upgrad").backward(model.losses(), model)
    assert model.own["a"].grad.item() == pytest.approx(2.0 + 5.0)      # ∂L_a + ∂L_b
    assert model.own["b"].grad.item() == pytest.approx(3.0)


class OnlyShared(nn.Module):
    """One shared vector w of 3 entries, no task parameters: the losses are written on w directly."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))

    def shared_parameters(self):
        return iter([self.w])

    def task_parameters(self, task):
        return iter([])


def test_cagrad_is_the_mean_at_c0_and_scales_agreeing_gradients_by_1_plus_c():
    pytest.importorskip("cvxpy")
    from torchjd.aggregation import CAGrad
    model = OnlyShared()
    w = model.w
    # g_a = (2, 0, 0), g_b = (0, 0.5, 0): with c = 0 CAGrad is gradient descent on the mean loss
    JacobianAggregation(CAGrad(c=0.0), "cagrad").backward({"a": 2 * w[0], "b": 0.5 * w[1]}, model)
    torch.testing.assert_close(w.grad, torch.tensor([1.0, 0.25, 0.0]), atol=1e-4, rtol=1e-4)
    # identical gradients g: d = g0 + c |g0| g/|g| = (1 + c) g
    w.grad = None
    JacobianAggregation(CAGrad(c=0.5), "cagrad").backward({"a": w[0] + w[1], "b": w[0] + w[1]}, model)
    torch.testing.assert_close(w.grad, torch.tensor([1.5, 1.5, 0.0]), atol=1e-3, rtol=1e-3)


@pytest.mark.filterwarnings("ignore:You are solving a parameterized problem")
def test_nash_mtl_weights_orthogonal_gradients_by_their_inverse_norms():
    pytest.importorskip("cvxpy")
    pytest.importorskip("ecos")
    from torchjd.aggregation import NashMTL
    model = OnlyShared()
    w = model.w
    # the bargaining solution solves (GᵀG) α = 1/α; for orthogonal g_i that is α_i = 1/|g_i|, so the
    # update points along the sum of the unit gradients, (1, 1, 0), however unequal the norms
    JacobianAggregation(NashMTL(n_tasks=2), "nashmtl").backward({"a": 2 * w[0], "b": 0.5 * w[1]}, model)
    direction = w.grad / w.grad.norm()
    torch.testing.assert_close(direction, torch.tensor([1.0, 1.0, 0.0]) / math.sqrt(2), atol=1e-3, rtol=1e-3)



@pytest.mark.parametrize("method, options, message", [
    ("dwa", {"temprature": 9}, r"trainer\.weighting_options\.temprature: the weighting 'dwa' does not take this "
                               r"key \(it takes: temperature, window\)"),
    ("dwa", {"window": 2.5}, r"trainer\.weighting_options\.window: expected an integer"),
    ("uncertainty", {"alpha": 1.0}, r"trainer\.weighting_options\.alpha: the weighting 'uncertainty' takes no options"),
    ("fixed", {"weights": {"a": "heavy"}}, r"trainer\.weighting_options\.weights"),
])
def test_weighting_options_are_typed_per_method(fdu_config, method, options, message):
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "weighting": method, "weighting_options": options}}
    with pytest.raises(ConfigError, match=message):
        load_config(raw=raw)


def test_weighting_options_reach_the_method(fdu_config):
    from polytask.training.weighting import build_weighting
    raw = {**fdu_config, "trainer": {**fdu_config["trainer"], "weighting": "dwa",
                                     "weighting_options": {"temperature": 4.0, "window": 7}}}
    dwa = build_weighting(load_config(raw=raw), ["a", "b"], seed=1)
    assert (dwa.temperature, dwa.window) == (4.0, 7)


# ----------------------------------------------------------------------------- fp16 loss scaling


def test_uncertainty_weighting_scales_everything_it_backpropagates():
    """Under a loss scale every gradient is scaled, the log-variance term's too (GradScaler.unscale_
    divides them all by the scale); the weights come from the true losses."""
    weighting = UncertaintyWeighting(["a", "b"])
    w = nn.Parameter(torch.tensor(2.0))
    used = weighting.backward({"a": w * 1.0, "b": w * 3.0}, None, scale=lambda loss: 1024.0 * loss)
    assert used == {"a": 1.0, "b": 1.0}
    assert weighting.log_vars["a"].grad.item() == pytest.approx(1024.0 * (1 - 2.0))
    assert weighting.log_vars["b"].grad.item() == pytest.approx(1024.0 * (1 - 6.0))
    assert w.grad.item() == pytest.approx(1024.0 * (1.0 + 3.0))


class CountingScaler(torch.amp.GradScaler):
    """A GradScaler that counts the tensors it scales."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scaled = 0

    def scale(self, outputs):
        self.scaled += 1
        return super().scale(outputs)


class ScaledLossTrainer(Trainer):
    """The trainer with the loss scaler that fp16 on a GPU gets, here on CPU (its scale, 2^12,
    stays put: no step overflows, and it would grow only after 2000 steps)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scaler = CountingScaler("cpu", init_scale=2.0 ** 12)
        scalers.append(self.scaler)


scalers: list[CountingScaler] = []


@pytest.mark.parametrize("method", ["dwa", "uncertainty", "gradnorm"])
def test_stateful_weightings_see_the_unscaled_losses(fdu_config, tmp_path, monkeypatch, method):
    """A loss scaler leaves a run unchanged: its scale reaches the gradients (and leaves them again
    in unscale_), never the losses that a weighting keeps (DWA's loss averages, GradNorm's first
    losses) or balances against its own terms (uncertainty's log-variances)."""
    runs = {}
    for name, trainer_class in (("plain", Trainer), ("scaled", ScaledLossTrainer)):
        raw = {**fdu_config, "output_dir": str(tmp_path / name),
               "trainer": {**fdu_config["trainer"], "step_mode": "all_tasks", "weighting": method,
                           "weighting_options": {"window": 2} if method == "dwa" else {},
                           "max_steps": 12, "eval_every": 6}}
        monkeypatch.setattr(runner, "Trainer", trainer_class)
        runner.train(load_config(raw=raw), quiet=True)
        run = tmp_path / name
        runs[name] = {
            "state": json.loads((run / "last/state.json").read_text())["weighting"],
            "parameters": torch.load(run / "last/trainer.pt", weights_only=True)["weighting"],
            "records": [{k: r[k] for k in ("train_loss", "weights", "dev")}
                        for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())],
            "model": read_weights(run / "last/model.safetensors")}
    assert scalers[-1].scaled > 0                      # the scaled run did scale its losses
    plain, scaled = runs["plain"], runs["scaled"]
    assert scaled["state"] == plain["state"]
    assert scaled["records"] == plain["records"]
    assert scaled["parameters"].keys() == plain["parameters"].keys()
    for name in plain["parameters"]:
        assert torch.equal(scaled["parameters"][name], plain["parameters"][name]), name
    for name in plain["model"]:
        assert torch.equal(scaled["model"][name], plain["model"][name]), name

