"""Question answering data: SQuAD-format JSON, and tasks cast as (context, question, answer).

decaNLP (McCann et al. 2018) treats every task as question answering; this module holds the
reading side: SQuAD v1.1 files and the article-level split used here (only the official dev file
is available, so it is split by article).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from .readers import DataError, read_text_bytes
from .spans import chunks


@dataclass
class QAExample:
    context: str
    question: str
    answers: list[str] = field(default_factory=list)     # gold answer texts (several in SQuAD dev)
    answer_starts: list[int] = field(default_factory=list)
    id: str = ""
    title: str = ""


def read_squad(path: str | Path) -> list[QAExample]:
    """Every question of a SQuAD v1.1 JSON file, in file order."""
    path = Path(path)
    raw = read_text_bytes(path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text ({exc.reason})", raw.count(b"\n", 0, exc.start) + 1) from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON ({exc.msg})", exc.lineno) from None
    except RecursionError:
        raise DataError(path, "not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(path, "not a SQuAD file: expected {\"data\": [articles]}")

    def get(obj, key: str, kind, where: str, default=None):
        if not isinstance(obj, dict):
            raise DataError(path, f"{where}: expected a JSON object, as a SQuAD v1.1 file has")
        value = obj.get(key, default)
        if not isinstance(value, kind) or isinstance(value, bool):
            what = {list: "a list", int: "an integer"}.get(kind, "a string")
            raise DataError(path, f"{where}.{key}: expected {what}, as a SQuAD v1.1 file has")
        return value

    out = []
    for a, article in enumerate(data["data"]):
        where = f"data[{a}]"
        title = get(article, "title", str, where, "")
        for p, para in enumerate(get(article, "paragraphs", list, where, [])):
            context = get(para, "context", str, f"{where}.paragraphs[{p}]")
            for q, qa in enumerate(get(para, "qas", list, f"{where}.paragraphs[{p}]", [])):
                at = f"{where}.paragraphs[{p}].qas[{q}]"
                answers = get(qa, "answers", list, at, [])
                texts = [get(x, "text", str, f"{at}.answers[{i}]") for i, x in enumerate(answers)]
                starts = [get(x, "answer_start", int, f"{at}.answers[{i}]") for i, x in enumerate(answers)]
                out.append(QAExample(context=context, question=get(qa, "question", str, at), answers=texts,
                                     answer_starts=starts, id=str(get(qa, "id", (str, int), at, "")),
                                     title=title))
    if not out:
        raise DataError(path, "no questions found")
    return out


def split_by_article(examples: list[QAExample], test_fraction: float = 0.5,
                     seed: int = 1) -> tuple[list[QAExample], list[QAExample]]:
    """Split by article title (no paragraph of a test article is seen in training); the titles are
    shuffled with ``seed`` and the first ``1 - test_fraction`` of them train."""
    titles = list(dict.fromkeys(ex.title for ex in examples))
    random.Random(f"{seed}/squad-split").shuffle(titles)
    cut = round(len(titles) * (1 - test_fraction))
    train_titles = set(titles[:cut])
    train = [ex for ex in examples if ex.title in train_titles]
    test = [ex for ex in examples if ex.title not in train_titles]
    return train, test


# ----------------------------------------------------------------------------- tasks as QA
# decaNLP casts every task as (context, question, answer). The templates are the user's: a
# classification task gives its question and the answer word of each label; a sentence-pair task
# puts its second text into the question with ``{b}``; a tagging task answers with the tagged
# spans rendered as text. ``{labels}`` in a question names the answer words as options ("negative
# or positive", "entailment, neutral, or contradiction"): see :func:`options_text`.


def options_text(words: list[str]) -> str:
    """The answer words as the options a question names: "a or b"; "a, b, or c"."""
    words = list(words)
    if len(words) <= 2:
        return " or ".join(words)
    return ", ".join(words[:-1]) + ", or " + words[-1]


def classification_as_qa(text: str, label: str, question: str, answers: dict[str, str]) -> QAExample:
    """("this blender is great", "1", "Is this review negative or positive?", {"0": "negative",
    "1": "positive"}) -> context = the text, answer = "positive"."""
    if label not in answers:
        raise ValueError(f"no answer word for label {label!r} (answer words: {answers})")
    return QAExample(context=text, question=question.format(labels=options_text(answers.values())),
                     answers=[answers[label]])


def pair_as_qa(text_a: str, text_b: str, label: str, question: str, answers: dict[str, str]) -> QAExample:
    """Premise as context; the question template holds the hypothesis: "{b} -- entailment,
    neutral, or contradiction?"."""
    if "{b}" not in question:
        raise ValueError(f"the question template of a sentence-pair task needs {{b}}: {question!r}")
    if label not in answers:
        raise ValueError(f"no answer word for label {label!r} (answer words: {answers})")
    return QAExample(context=text_a, question=question.format(b=text_b, labels=options_text(answers.values())),
                     answers=[answers[label]])


def tagging_as_qa(tokens: list[str], tags: list[str], question: str, scheme: str = "BIO") -> QAExample:
    """The tagged chunks as text: "John lives in New York" with PER/LOC tags and the question
    "What are the named entities?" -> "John (PER), New York (LOC)"; "none" when there is none."""
    spans = [f"{' '.join(tokens[s:e + 1])} ({kind})" for kind, s, e in chunks(tags)] if scheme else []
    return QAExample(context=" ".join(tokens), question=question, answers=[", ".join(spans) or "none"])
