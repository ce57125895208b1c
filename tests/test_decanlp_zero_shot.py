"""decaNLP's zero-shot claim on a toy task: with several answer-word sets, each training example
asked with its options named in the question in a random order, MQAN learns to answer by copying
an option out of the question (the question pointer), so a question with words it never saw as
answers is still answered with one of them."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from polytask.config import ConfigError, load_config
from polytask.models.mqan import first_answer_switches
from polytask.runner import load_run, predict, train

FILLER = ["the", "day", "was", "a", "and", "very", "quite", "then", "we", "they", "walked", "said", "it"]
KEYS = ("rainy", "sunny")                  # label 0, label 1: the only word that tells them apart
# (label 0 word, label 1 word): none of them is ever in a context
TRAIN_SETS = [("low", "high"), ("down", "up"), ("cold", "hot"), ("dark", "light"), ("sad", "happy"),
              ("wrong", "right")]
UNSEEN = [("grim", "bright"), ("frown", "smile"), ("dull", "vivid")]


def write_toy(data_dir: Path, n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(f"toy/{seed}")
    rows = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 7))]
        words.insert(rng.randint(0, len(words)), KEYS[label])
        rows.append((str(label), " ".join(words)))
    rng.shuffle(rows)
    return rows


def toy_config(tmp_path: Path, answer_words, question="is the day {labels} ?") -> dict:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for split, n, seed in (("train", 480, 1), ("test", 40, 2)):
        (data / f"toy.{split}").write_text("".join(f"{lab}\t{text}\n" for lab, text in write_toy(data, n, seed)))
    return {"seed": 1, "output_dir": str(tmp_path / "run"), "data_dir": str(data),
            "tasks": [{"name": "toy", "type": "qa", "format": "fdu", "train": "toy.train", "test": "toy.test",
                       "dev_split": {"policy": "tail", "size": 40}, "question": question,
                       "answer_words": answer_words}],
            "data": {"batch_size": 16, "eval_batch_size": 64, "max_length": 20},
            "model": {"architecture": "mqan", "embedding_dim": 16, "dropout": 0.0, "max_answer_length": 3,
                      "encoder": {"type": "bilstm", "hidden_dim": 32, "num_layers": 1, "num_heads": 2}},
            "trainer": {"max_steps": 300, "eval_every": 100, "lr": 0.005, "progress": False}}


def test_varied_options_teach_mqan_to_answer_from_the_question(tmp_path):
    sets = [{"0": neg, "1": pos} for neg, pos in TRAIN_SETS]
    raw = toy_config(tmp_path, sets)
    torch.manual_seed(0)
    train(load_config(raw=raw), quiet=True)
    run = load_run(raw["output_dir"])
    contexts = [f"we walked and it was {KEYS[i % 2]} then" for i in range(20)]
    labels = [i % 2 for i in range(20)]

    def ask(words: tuple[str, str], swap: bool):
        question = f"is the day {words[1]} or {words[0]} ?" if swap else f"is the day {words[0]} or {words[1]} ?"
        with first_answer_switches(run.model.net) as seen:
            answers = [a["answer"] for a in predict(run, "toy", [(c, question) for c in contexts])]
        gamma, lam = torch.cat(seen).mean(0).tolist()
        right = sum(a == words[y] for a, y in zip(answers, labels)) / len(labels)
        options = sum(a in words for a in answers) / len(answers)
        return right, options, (1 - gamma) * (1 - lam)        # the share copied from the question
    # training words, both orders: the options are read from the question, not from their place in it
    for words in TRAIN_SETS[:3]:
        for swap in (False, True):
            right, options, from_question = ask(words, swap)
            assert right >= 0.9 and from_question > 0.5, (words, swap, right, from_question)
    # words never seen at all (outside the vocabulary): still answered with an option, copied
    for words in UNSEEN:
        right, options, from_question = ask(words, False)
        assert options >= 0.9 and from_question > 0.5, (words, options, from_question)


def test_one_fixed_question_learns_a_template_not_to_read_options(tmp_path):
    """The control: trained with one question naming the options in one order, the model answers
    by where a word stands, so the same options named the other way round are answered wrongly."""
    raw = toy_config(tmp_path, {"0": "low", "1": "high"}, question="is the day {labels} ?")
    train(load_config(raw=raw), quiet=True)
    run = load_run(raw["output_dir"])
    contexts = [f"we walked and it was {KEYS[i % 2]} then" for i in range(20)]
    for question, least, most in (("is the day low or high ?", 0.9, 1.0), ("is the day high or low ?", 0.0, 0.6)):
        answers = [a["answer"] for a in predict(run, "toy", [(c, question) for c in contexts])]
        right = sum(a == ("low", "high")[i % 2] for i, a in enumerate(answers)) / len(answers)
        assert least <= right <= most, (question, answers)


def test_training_draws_questions_and_evaluation_keeps_the_first(tmp_path):
    from polytask.experiment import load_tasks
    sets = [{"0": neg, "1": pos} for neg, pos in TRAIN_SETS]
    raw = toy_config(tmp_path, sets, question=["is the day {labels} ?", "{labels} ?"])
    task = load_tasks(load_config(raw=raw), Path(raw["data_dir"]))["toy"]
    asked = {" ".join(ex.tokens_b) for ex in task.train}
    assert len(asked) > 20                       # templates × sets × orders
    assert {ex.answers_text[0] for ex in task.train} == {w for pair in TRAIN_SETS for w in pair}
    for ex in task.train:                        # the answer is always one of the question's options
        assert ex.answers_text[0] in ex.tokens_b and ex.answer == [ex.answers_text[0]]
    assert {" ".join(ex.tokens_b) for ex in task.dev + task.test} == {"is the day low or high ?"}
    assert task.info()["question"] == "is the day {labels} ?".replace("{labels}", "low or high")
    assert task.info()["answer_words"] == {"0": "low", "1": "high"}
    again = load_tasks(load_config(raw=raw), Path(raw["data_dir"]))["toy"]
    assert [ex.tokens_b for ex in again.train] == [ex.tokens_b for ex in task.train]   # drawn with the seed


def test_varied_question_errors_name_the_key(tmp_path):
    sets = [{"0": "low", "1": "high"}, {"0": "down"}]
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.answer_words\[1\]: labels"):
        load_config(raw=toy_config(tmp_path, sets))
    sets = [{"0": "low", "1": "high"}, {"0": "down", "1": "down"}]
    with pytest.raises(ConfigError, match=r"answer_words\[1\]: two labels share"):
        load_config(raw=toy_config(tmp_path, sets))
    sets = [{"0": "low", "1": "high"}, {"0": "down", "1": "up"}]
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.question\[1\]: with several answer_words"):
        load_config(raw=toy_config(tmp_path, sets, question=["is it {labels} ?", "is it low or high ?"]))
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.question: only \{b\} and \{labels\}"):
        load_config(raw=toy_config(tmp_path, sets[0], question="is it {label} ?"))


# ----------------------------------------------------------------------------- MQAN on a pretrained encoder

@pytest.mark.parametrize("setting", [{"freeze": "all"},
                                     {"adapter": {"type": "lora", "r": 2, "alpha": 4, "target_modules": ["query"]}}])
def test_mqan_reads_a_pretrained_encoder_beside_its_words(tmp_path, setting):
    """model.pretrained under MQAN: each context and question word gets its first sub-token's
    state; the run keeps its own copy, so it answers after the model folder is moved away."""
    import shutil

    from test_pretrained_encoders import save_tiny_bert

    from polytask.runner import load_run
    words = sorted(set(FILLER) | set(KEYS) | {w for pair in TRAIN_SETS for w in pair} | {"is", "?"})
    bert = save_tiny_bert(tmp_path / "bert", words)
    raw = toy_config(tmp_path, [{"0": neg, "1": pos} for neg, pos in TRAIN_SETS])
    raw["model"].update({"pretrained": str(bert), **setting})
    raw["trainer"]["max_steps"] = 40
    train(load_config(raw=raw), quiet=True)
    run = load_run(raw["output_dir"])
    net = run.model.net
    assert net.features is not None and net.features.output_dim == 32
    assert net.shared.forward_layers[0].input_size == 16 + 32                 # the word's embedding and its state
    trainable = {n.split(".")[1] for n, p in net.named_parameters() if p.requires_grad and n.startswith("features.")}
    if "freeze" in setting:
        assert not trainable
    else:                                                          # only the LoRA adapter trains on it
        assert all("lora_" in n for n, p in net.features.named_parameters() if p.requires_grad)
    # one word's features are its first sub-token's state: compare with the encoder read directly
    batch_words = ["we", "walked", "sunny"]
    from polytask.data.vocab import load_vocab
    vocab = load_vocab(Path(raw["output_dir"]) / "vocab.json")
    ids, starts = vocab.subtokens(batch_words)
    assert vocab.pretrained.tokenizer.convert_ids_to_tokens([ids[s] for s in starts]) == batch_words
    pairs = [("we walked and it was sunny then", "is the day low or high ?")]
    before = predict(run, "toy", pairs)
    shutil.move(str(bert), str(tmp_path / "elsewhere"))
    again = load_run(raw["output_dir"])
    assert predict(again, "toy", pairs) == before


def test_mqan_refuses_per_task_adapters(tmp_path):
    raw = toy_config(tmp_path, {"0": "low", "1": "high"})
    raw["model"].update({"pretrained": "minilm", "adapter": {"type": "lora", "per_task": True,
                                                             "target_modules": ["query"]}})
    with pytest.raises(ConfigError, match=r"model\.adapter\.per_task: MQAN has no task-specific part"):
        load_config(raw=raw)


# ----------------------------------------------------------------------------- balance_labels

def test_balance_labels_repeats_the_rarer_labels(tmp_path):
    from collections import Counter

    from polytask.experiment import load_tasks
    raw = toy_config(tmp_path, {"0": "low", "1": "high"})
    rows = [("1", f"it was sunny {i}") for i in range(70)] + [("0", f"it was rainy {i}") for i in range(30)]
    (Path(raw["data_dir"]) / "toy.train").write_text("".join(f"{lab}\t{text}\n" for lab, text in rows))
    raw["tasks"][0]["dev_split"] = {"policy": "tail", "size": 10}
    plain = load_tasks(load_config(raw=raw), Path(raw["data_dir"]))["toy"]
    raw["tasks"][0]["balance_labels"] = True
    task = load_tasks(load_config(raw=raw), Path(raw["data_dir"]))["toy"]
    before, after = Counter(ex.label for ex in plain.train), Counter(ex.label for ex in task.train)
    assert before == {"1": 70, "0": 20} and after == {"1": 70, "0": 70}
    texts = Counter(" ".join(ex.tokens) for ex in task.train if ex.label == "0")
    assert sorted(Counter(texts.values()).items()) == [(3, 10), (4, 10)]   # 20 -> 70: each 3 times, 10 of them 4
    assert task.dev == plain.dev and task.test == plain.test   # evaluation is not touched
    for kind, extra in (("tagging", {"format": "conll"}), ("qa", {"format": "squad"})):
        bad = toy_config(tmp_path, {"0": "low", "1": "high"})
        bad["tasks"][0] = {k: v for k, v in bad["tasks"][0].items() if k not in ("question", "answer_words")}
        bad["tasks"][0].update({"type": kind, **extra, "balance_labels": True})
        with pytest.raises(ConfigError, match=r"tasks\[0\]\.balance_labels: a .* has no label per example"):
            load_config(raw=bad)


def test_an_unquoted_yes_is_named(tmp_path):
    import yaml
    words = yaml.safe_load('[{"0": "low", "1": "high"}, {"0": no, "1": yes}]')     # YAML: false, true
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.answer_words\[1\]\.0: expected the answer as text, got False"):
        load_config(raw=toy_config(tmp_path, words))
