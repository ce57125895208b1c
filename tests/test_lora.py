"""LoRA adapters (``model.adapter``, peft) on a pretrained encoder: parameter counts against the
hand computation, what trains, per-task adapters that train only their own task, adapter-only
runs that save adapters and heads (the base kept once in pretrained/), exact resume, a bad
target module, and shared-private on a pretrained encoder. Tiny random BERT (H = 32, 2 layers)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from polytask.config import ConfigError, load_config  # noqa: E402
from polytask.kinds import get_kind  # noqa: E402
from polytask.models import build_model  # noqa: E402
from polytask.runner import evaluate, load_run, predict, train  # noqa: E402
from polytask.training import checkpoint as ckpt  # noqa: E402

from conftest import InterruptAt, classes, make_raw_config  # noqa: E402
from test_pretrained_encoders import bert, pair_raw, sts_raw, write_data  # noqa: E402,F401

H, LAYERS = 32, 2                       # the tiny BERT of test_pretrained_encoders


def lora_count(r: int, targets: int = 2, adapters: int = 1) -> int:
    """r (in + out) per adapted Linear (A: r x in, B: out x r); query and value are H x H."""
    return adapters * LAYERS * targets * r * (H + H)


def head_count(model, tasks=("a", "p")) -> int:
    return sum(p.numel() for t in tasks for p in model.head(t).parameters())


def built(tmp_path, bert, architecture, **adapter):
    cfg = load_config(raw=pair_raw(tmp_path, bert, architecture, adapter={"r": 4, **adapter}))
    return build_model(cfg, [classes("a", 2), classes("p", 2, pair=True)], vocab_size=0)


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- what trains

@pytest.mark.parametrize("architecture, per_task, adapters", [
    ("hard_sharing", False, 1), ("hard_sharing", True, 2), ("single_task", False, 2),
    ("transformer_sc", False, 1), ("transformer_sp", True, 2), ("shared_private", True, 2)])
def test_lora_parameter_counts_equal_the_hand_computation(tmp_path, bert, architecture, per_task, adapters):
    """Only the adapters and the heads train (the base is frozen when model.freeze is left out);
    their count is r (in + out) per adapted Linear per adapter (single_task: one per task's copy)."""
    model = built(tmp_path, bert, architecture, per_task=per_task)
    assert trainable(model) == lora_count(4, adapters=adapters) + head_count(model)
    heads = {id(p) for t in ("a", "p") for p in model.head(t).parameters()}
    for name, p in model.named_parameters():
        assert p.requires_grad == (".lora_" in name or id(p) in heads), name
    # each parameter has one owner: shared, or exactly one task
    owners = [id(p) for p in model.shared_parameters()] + [id(p) for t in ("a", "p") for p in model.task_parameters(t)]
    assert sorted(owners) == sorted(id(p) for p in model.parameters())


def test_freeze_none_with_an_adapter_fine_tunes_the_base_too(tmp_path, bert):
    model = built(tmp_path, bert, "hard_sharing", target_modules=["query", "key", "value", "dense"])
    encoder = sum(p.numel() for n, p in model.named_parameters() if ".lora_" not in n and n.startswith("encoder."))
    # dense: attention output (H -> H), intermediate (H -> 64), output (64 -> H) per layer, and the pooler
    dense = LAYERS * (4 * (H + H) + 4 * (H + 64) + 4 * (64 + H)) + 4 * (H + H)
    assert trainable(model) == lora_count(4, targets=3) + dense + head_count(model)
    cfg = load_config(raw=pair_raw(tmp_path, bert, "hard_sharing", adapter={"r": 4}, freeze="none"))
    full = build_model(cfg, [classes("a", 2), classes("p", 2, pair=True)], vocab_size=0)
    assert trainable(full) == encoder + lora_count(4) + head_count(full)


def test_per_task_adapters_a_step_of_task_a_changes_only_as_adapter(tmp_path, bert):
    write_data(tmp_path)
    cfg = load_config(raw=pair_raw(tmp_path, bert, "hard_sharing", adapter={"r": 4, "per_task": True}))
    from polytask.experiment import build_vocab
    vocab = build_vocab(cfg, {})
    model = build_model(cfg, [classes("a", 2), classes("p", 2, pair=True)], vocab_size=len(vocab))
    names = {id(p): n for n, p in model.named_parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=0.01)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    from polytask.data.readers import Example
    kind = get_kind("classification")
    batch = kind.collate("a", kind.encode([Example(tokens=["x"], text="the movie was good", label="1"),
                                           Example(tokens=["x"], text="the movie was bad", label="0")],
                                          vocab, ["0", "1"], 32))
    for _ in range(2):                                      # LoRA's B starts at 0: A moves from step 2
        model.encode("p", batch.text)                       # p's adapter was active last: the switch matters
        optimizer.zero_grad()
        model(batch).loss.backward()
        assert all(p.requires_grad for p in model.encoder.adapter_parameters())   # switching kept the flags
        assert all(p.grad is None for p in model.encoder.adapter_parameters("p"))
        optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    a_adapter = {names[id(p)] for p in model.encoder.adapter_parameters("a")}
    assert changed == a_adapter | {names[id(p)] for p in model.head("a").parameters()}
    assert len(a_adapter) == LAYERS * 2 * 2                 # A and B of query and value per layer


# ----------------------------------------------------------------------------- runs

def test_an_adapter_only_run_saves_adapters_and_heads_and_reloads(tmp_path, bert):
    """results.json records the trainable count; best/ and last/ hold adapters and heads only;
    pretrained/ keeps the base weights once; predict and evaluate after loading equal the trained
    run's, also once the original model folder is gone."""
    write_data(tmp_path)
    raw = pair_raw(tmp_path, bert, "hard_sharing", adapter={"r": 4})
    raw["trainer"].update(max_steps=40, eval_every=20, lr=0.01)
    results = train(load_config(raw=raw), quiet=True)
    run_dir = Path(raw["output_dir"])
    model = load_run(run_dir).model
    assert results["trainable_params"] == lora_count(4) + head_count(model) == 1156
    assert results["params"] == sum(p.numel() for p in model.parameters())
    for weights in ("best", "last"):
        keys = set(ckpt.read_weights(run_dir / weights / "model.safetensors"))
        assert keys and all(".lora_" in k or k.startswith("heads.") for k in keys), sorted(keys)[:5]
        assert len([k for k in keys if ".lora_" in k]) == LAYERS * 2 * 2
    assert (run_dir / "pretrained" / "model.safetensors").is_file()
    base = ckpt.read_weights(bert / "model.safetensors")
    kept = ckpt.read_weights(run_dir / "pretrained" / "model.safetensors")
    assert base.keys() == kept.keys() and all(torch.equal(base[k], kept[k]) for k in base)

    inputs = ["the movie was good", "a story of the bad film"]
    before = predict(load_run(run_dir), "a", inputs)
    scores = evaluate(run_dir)
    shutil.move(str(bert), str(tmp_path / "elsewhere"))
    after = predict(load_run(run_dir), "a", inputs)
    assert [r["probabilities"] for r in after] == [r["probabilities"] for r in before]
    assert evaluate(run_dir) == scores == {t: results["test_metrics"][t] for t in scores}


def test_a_per_task_lora_run_resumes_exactly(tmp_path, bert):
    write_data(tmp_path)
    raw = pair_raw(tmp_path, bert, "hard_sharing", adapter={"r": 4, "per_task": True, "dropout": 0.1})
    raw["trainer"].update(max_steps=40, eval_every=20, lr=0.01)
    whole = train(load_config(raw={**raw, "output_dir": str(tmp_path / "whole")}), quiet=True)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(raw=raw), quiet=True, callbacks=[InterruptAt(25)])
    resumed = train(load_config(raw=raw), quiet=True, resume=True)
    assert resumed["steps"] == 40 and resumed["trainable_params"] == whole["trainable_params"]
    assert resumed["test_metrics"] == whole["test_metrics"]
    a = ckpt.read_weights(tmp_path / "whole" / "last" / "model.safetensors")
    b = ckpt.read_weights(Path(raw["output_dir"]) / "last" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_target_module_the_model_lacks_is_one_clear_error_before_training(tmp_path, bert):
    from polytask.modules.lora import AdapterTargetError
    write_data(tmp_path)
    raw = pair_raw(tmp_path, bert, "hard_sharing", adapter={"target_modules": ["query", "q_proj"]})
    with pytest.raises(AdapterTargetError, match=r"model\.adapter\.target_modules: the model in .*tiny-bert has no "
                                                 r"Linear layer named 'q_proj'; its Linear layers are named "
                                                 r"dense, key, query, value"):
        train(load_config(raw=raw), quiet=True)
    assert not (Path(raw["output_dir"]) / "last").exists()


def test_adapter_settings_that_cannot_work_are_refused_at_load(tmp_path, bert):
    cases = [
        ("hard_sharing", {"adapter": {"r": 0}}, r"model\.adapter\.r: must be >= 1"),
        ("hard_sharing", {"adapter": {"rank": 4}}, r"model\.adapter\.rank: unknown key"),
        ("hard_sharing", {"adapter": {"target_modules": []}}, r"model\.adapter\.target_modules"),
        ("hard_sharing", {"adapter": {"type": "ia3"}}, r"model\.adapter\.type"),
        ("single_task", {"adapter": {"per_task": True}}, r"model\.adapter\.per_task: the architecture 'single_task'"),
        ("shared_private", {}, r"model\.adapter: the architecture 'shared_private' on a pretrained encoder"),
        ("shared_private", {"adapter": {}}, r"model\.adapter: the architecture 'shared_private'"),
        ("adversarial_shared_private", {"adapter": {"per_task": True}},
         r"model\.pretrained: the architecture 'adversarial_shared_private' does not run on a pretrained"),
    ]
    for architecture, model, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_config(raw=pair_raw(tmp_path, bert, architecture, **model))
    for architecture in ("hard_sharing", "transformer_sc"):
        raw = make_raw_config(tmp_path / "data", tmp_path / "run", architecture)
        raw["model"]["adapter"] = {"r": 4}
        if architecture == "transformer_sc":
            raw["model"]["encoder"] = {"type": "transformer", "hidden_dim": 16}
        with pytest.raises(ConfigError, match=r"model\.adapter: applies to a pretrained encoder"):
            load_config(raw=raw)


# ----------------------------------------------------------------------------- shared-private

def test_shared_private_reads_the_base_model_and_the_tasks_adapter(tmp_path, bert):
    """s is the encoder without adapters (the base model's own states), h^k the states through
    task k's adapter; once the adapters are trained (B != 0), h^a differs from s and from h^p."""
    write_data(tmp_path)
    from polytask.experiment import build_vocab
    from transformers import AutoModel
    cfg = load_config(raw=pair_raw(tmp_path, bert, "shared_private", adapter={"r": 4, "per_task": True}))
    vocab = build_vocab(cfg, {})
    model = build_model(cfg, [classes("a", 2), classes("p", 2, pair=True)], vocab_size=len(vocab)).eval()
    with torch.no_grad():
        for p in model.encoder.adapter_parameters("a"):
            p.normal_(0, 0.5)
    from polytask.data.readers import Example
    kind = get_kind("classification")
    batch = kind.collate("a", kind.encode([Example(tokens=["x"], text="the movie was good", label="1")],
                                          vocab, ["0", "1"], 32))
    base = AutoModel.from_pretrained(str(bert), local_files_only=True).eval()
    with torch.no_grad():
        own = base(input_ids=batch.text.tokens, attention_mask=batch.text.mask.long()).last_hidden_state
        a = model.encode("a", batch.text)
        p = model.encode("p", batch.text)
    torch.testing.assert_close(a.states[..., :H], own)
    torch.testing.assert_close(p.states[..., :H], own)
    torch.testing.assert_close(p.states[..., H:], own)                   # p's adapter is still zero (B = 0)
    assert (a.states[..., H:] - own).abs().max() > 1e-3
    assert a.sentence().shape == (1, 2 * H)


@pytest.mark.parametrize("freeze", [None, "none"])
def test_shared_private_on_a_pretrained_encoder_trains_classification_and_pairs(tmp_path, bert, freeze):
    write_data(tmp_path)
    raw = pair_raw(tmp_path, bert, "shared_private", adapter={"r": 8, "per_task": True},
                   **({"freeze": freeze} if freeze else {}))
    raw["trainer"].update(max_steps=120, eval_every=40, lr=0.005 if freeze is None else 0.002)
    results = train(load_config(raw=raw), quiet=True)
    assert results["dev"]["a"] >= 89.99 and results["dev"]["p"] >= 79.99, results
    run = load_run(raw["output_dir"])
    assert run.model.head("p").linear.in_features == 2 * H          # [s; h^p] of the cross-encoded pair
    good, bad = predict(run, "a", ["the movie was good", "the movie was bad"])
    assert good["label"] == "1" and bad["label"] == "0"


def test_shared_private_on_a_pretrained_encoder_trains_pair_regression(tmp_path, bert):
    raw = sts_raw(tmp_path, bert, {"architecture": "shared_private", "adapter": {"r": 8, "per_task": True},
                                   "freeze": "none"})
    raw["trainer"].update(max_steps=80, eval_every=40, lr=0.002)
    results = train(load_config(raw=raw), quiet=True)
    assert results["dev"]["s"] >= 90.0, results                 # Pearson x 100
    run = load_run(raw["output_dir"])
    high, low = predict(run, "s", [["the movie was", "the movie indeed"], ["the movie was", "the movie never"]])
    assert high["score"] > low["score"]


def test_without_peft_an_adapter_config_names_the_extra(tmp_path, bert, monkeypatch):
    import sys
    from polytask.errors import PolytaskError
    monkeypatch.setitem(sys.modules, "peft", None)           # import peft fails
    with pytest.raises(PolytaskError, match=r"model\.adapter: .*pip install 'polytask\[peft\]'"):
        built(tmp_path, bert, "hard_sharing")
    cfg = load_config(raw=pair_raw(tmp_path, bert, "hard_sharing"))       # no adapter: peft is not needed
    assert trainable(build_model(cfg, [classes("a", 2)], vocab_size=0)) > 0


def test_transfer_from_an_adapter_only_run_whose_model_folder_is_gone(tmp_path, bert):
    """The shared adapter is the source run's and stays fixed; the base comes from its pretrained/
    copy; only the new task's head trains."""
    from polytask.runner import transfer_config
    from conftest import write_yaml
    write_data(tmp_path)
    raw = pair_raw(tmp_path, bert, "hard_sharing", adapter={"r": 4})
    raw["trainer"].update(max_steps=30, eval_every=15, lr=0.01)
    train(load_config(raw=raw), quiet=True)
    shutil.move(str(bert), str(tmp_path / "elsewhere"))
    new = make_raw_config(tmp_path / "data", tmp_path / "transfer-run")
    new["tasks"] = [{"name": "b"}]
    new["trainer"].update(max_steps=20, eval_every=10)
    cfg = transfer_config(raw["output_dir"], write_yaml(new, tmp_path / "new.yaml"))
    results = train(cfg, quiet=True, transfer_from=Path(raw["output_dir"]))
    assert results["trainable_params"] == H * 2 + 2                        # b's head only
    source = ckpt.read_weights(Path(raw["output_dir"]) / "best" / "model.safetensors")
    moved = ckpt.read_weights(Path(new["output_dir"]) / "best" / "model.safetensors")
    lora = [k for k in source if ".lora_" in k]
    assert lora and all(torch.equal(source[k], moved[k]) for k in lora)
    assert (Path(new["output_dir"]) / "pretrained" / "model.safetensors").is_file()
    assert predict(load_run(new["output_dir"]), "b", ["yes it was"])[0]["label"] in ("0", "1")


def test_task_names_become_distinct_peft_adapter_names():
    from polytask.modules.lora import adapter_names
    assert adapter_names(["books", "a.b", "a-b", "shared"]) == {
        "books": "task_books", "a.b": "task_a_b", "a-b": "task_a_b_2", "shared": "task_shared"}


def test_tasks_named_like_peft_matrices_own_only_their_adapter(bert):
    """Tasks named A and B: each owns its own adapter's matrices, not every adapter's lora_A / lora_B."""
    from polytask.modules.pretrained import PretrainedEncoder
    encoder = PretrainedEncoder(str(bert), freeze="all", adapters=["A", "B"], lora_r=4)
    a, b = ({id(p) for p in encoder.adapter_parameters(t)} for t in ("A", "B"))
    assert not a & b
    assert sum(p.numel() for p in encoder.adapter_parameters("A")) == lora_count(4)
    assert sum(p.numel() for p in encoder.adapter_parameters("B")) == lora_count(4)


def test_tagging_trains_through_a_per_task_adapter(tmp_path, bert):
    from test_pretrained_encoders import tagging_raw
    raw = tagging_raw(tmp_path, bert, "hard_sharing")
    raw["model"]["adapter"] = {"r": 8, "per_task": True, "target_modules": ["query", "value", "dense"]}
    raw["trainer"].update(lr=0.01)
    results = train(load_config(raw=raw), quiet=True)
    assert results["dev"]["t"] >= 95.0, results
    [record] = predict(load_run(raw["output_dir"]), "t", ["the cats playing a dog"])
    assert record["tags"] == ["D", "N", "V", "D", "N"]
