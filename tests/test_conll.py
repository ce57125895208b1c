"""CoNLL and CoNLL-U readers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from polytask.data.conll import read_conll, read_conllu
from polytask.data.readers import DataError

CONLL = """-DOCSTART- -X- -X- O

Confidence NN B-NP
in IN B-PP
the DT B-NP

pound NN I-NP
is VBZ B-VP
"""

CONLLU = """# sent_id = 1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t3:conj\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def test_conll_sentences_docstart_and_columns(tmp_path: Path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL)
    examples, _ = read_conll(path)
    assert [ex.tokens for ex in examples] == [["Confidence", "in", "the"], ["pound", "is"]]
    assert [ex.tags for ex in examples] == [["B-NP", "B-PP", "B-NP"], ["I-NP", "B-VP"]]
    assert examples[0].line == 3 and examples[1].line == 7
    pos, _ = read_conll(path, label_column=1)
    assert pos[0].tags == ["NN", "IN", "DT"]


def test_conll_wrong_column_count_names_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.txt"
    path.write_text("a DT B-NP\nb NN\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: expected 3 columns"):
        read_conll(path)


def test_conllu_skips_ranges_and_empty_nodes(tmp_path: Path):
    path = tmp_path / "x.conllu"
    path.write_text(CONLLU)
    examples, _ = read_conllu(path)
    assert examples[0].tokens == ["Do", "n't", "go", "."]
    assert examples[0].tags == ["AUX", "PART", "VERB", "PUNCT"]
    assert examples[1].tokens == ["Hi"] and examples[1].line == 10
    xpos, _ = read_conllu(path, label_field="xpos")
    assert xpos[0].tags == ["VBP", "RB", "VB", "."]


def test_conllu_missing_label_and_short_line(tmp_path: Path):
    path = tmp_path / "bad.conllu"
    path.write_text("1\tDo\tdo\t_\tVBP\t_\t0\troot\t_\t_\n")
    with pytest.raises(DataError, match=r"bad\.conllu:1: missing UPOS"):
        read_conllu(path)
    path.write_text("1\tDo\tdo\tAUX\n")
    with pytest.raises(DataError, match=r"bad\.conllu:1: expected 10"):
        read_conllu(path)


def _data() -> Path:
    for c in (os.environ.get("POLYTASK_DATA"), Path(__file__).parents[1].parent / "shared" / "data"):
        if c and (Path(c) / "ud-en-ewt" / "en_ewt-ud-dev.conllu").is_file():
            return Path(c)
    pytest.skip("UD English EWT not found (set $POLYTASK_DATA)")


@pytest.mark.data
def test_real_files_read():
    data = _data()
    ewt, _ = read_conllu(data / "ud-en-ewt" / "en_ewt-ud-dev.conllu")
    assert len(ewt) == 2001                                   # UD v2.16 EWT dev sentences
    chunk, _ = read_conll(data / "conll2000" / "test.txt")
    assert len(chunk) == 2012 and sum(len(ex.tokens) for ex in chunk) == 47377
