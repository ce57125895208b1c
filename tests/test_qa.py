"""SQuAD reading, the article split, and SQuAD-normalised EM / F1."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from polytask.data.qa import read_squad, split_by_article
from polytask.data.readers import DataError
from polytask.evaluation.qa_metrics import decathlon_score, normalize_answer, qa_scores, token_f1


def test_normalisation_and_scores_by_hand():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert token_f1("the big red dog", "a red dog") == pytest.approx(2 * (2 / 3) * 1.0 / (2 / 3 + 1.0))
    scores = qa_scores(["Denver Broncos", "in 1990"], [["Denver Broncos", "Broncos"], ["1991"]])
    assert scores["em"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(50.0)          # second: "in 1990" vs "1991" shares nothing
    assert decathlon_score({"squad": 70.0, "sst": 86.0}) == 156.0


def test_read_squad_and_errors(tmp_path: Path):
    data = {"version": "1.1", "data": [
        {"title": "A", "paragraphs": [{"context": "Paris is in France.", "qas": [
            {"id": "1", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]}]}]},
        {"title": "B", "paragraphs": [{"context": "x", "qas": [{"id": "2", "question": "q", "answers": []}]}]}]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    examples = read_squad(path)
    assert [e.id for e in examples] == ["1", "2"] and examples[0].answers == ["France"]
    assert examples[0].context[examples[0].answer_starts[0]:].startswith("France")
    train, test = split_by_article(examples, 0.5, seed=1)
    assert {e.title for e in train}.isdisjoint({e.title for e in test}) and len(train) + len(test) == 2
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_squad(path)


@pytest.mark.data
def test_real_squad_dev_split():
    for c in (os.environ.get("POLYTASK_DATA"), Path(__file__).parents[1].parent / "shared" / "data"):
        if c and (Path(c) / "squad1.1" / "dev-v1.1.json").is_file():
            examples = read_squad(Path(c) / "squad1.1" / "dev-v1.1.json")
            break
    else:
        pytest.skip("SQuAD dev not found")
    assert len(examples) == 10570 and len({e.title for e in examples}) == 48
    train, test = split_by_article(examples, 0.5, seed=1)
    assert len({e.title for e in train}) == 24 and len(train) + len(test) == 10570


def test_every_task_type_renders_as_qa():
    from polytask.data.qa import classification_as_qa, pair_as_qa, tagging_as_qa
    words = {"0": "negative", "1": "positive"}
    ex = classification_as_qa("works great", "1", "Is this review {labels}?", words)
    assert (ex.context, ex.question, ex.answers) == ("works great", "Is this review negative or positive?",
                                                     ["positive"])
    ex = pair_as_qa("A man sleeps.", "Nobody sleeps.", "c", "{b} -- entailment, neutral, or contradiction?",
                    {"c": "contradiction"})
    assert ex.question.startswith("Nobody sleeps. --") and ex.answers == ["contradiction"]
    ex = tagging_as_qa("John lives in New York".split(), ["B-PER", "O", "O", "B-LOC", "I-LOC"],
                       "What are the named entities?")
    assert ex.answers == ["John (PER), New York (LOC)"]
    assert tagging_as_qa(["hi"], ["O"], "q").answers == ["none"]
    with pytest.raises(ValueError, match="needs \\{b\\}"):
        pair_as_qa("a", "b", "c", "no placeholder", {"c": "x"})


def test_a_written_question_is_split_into_words_even_for_pre_tokenised_files():
    from polytask.config import TaskConfig
    from polytask.data.readers import Example
    from polytask.kinds.qa import cast_to_qa
    cfg = TaskConfig(name="s", type="qa", format="fdu", tokenizer="whitespace", train="x",
                     question="Is this review negative or positive?", answer_words={"0": "negative", "1": "positive"})
    [ex] = cast_to_qa(cfg, [Example(tokens="it does n't work".split(), label="0", line=1)])
    assert ex.tokens_b == ["is", "this", "review", "negative", "or", "positive", "?"]   # not "positive?"
    assert ex.answer == ["negative"] and ex.tokens == ["it", "does", "n't", "work"]
    pair = TaskConfig(name="p", type="qa", format="tsv", tokenizer="whitespace", train="x", text_b_column="b",
                      question="{b} -- same or different?", answer_words={"1": "same", "0": "different"})
    [ex] = cast_to_qa(pair, [Example(tokens=["a"], tokens_b=["it", "does", "n't", "?!"], label="1", line=1)])
    assert ex.tokens_b[:4] == ["it", "does", "n't", "?!"]                     # {b} kept as read
    assert ex.tokens_b[-4:] == ["same", "or", "different", "?"]
