"""Static validation: findings, policy, fingerprint, files and archives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metasearch.candidate.validate import (
    Finding,
    ValidationPolicy,
    fingerprint,
    format_findings,
    validate_code,
    validate_path,
)
from metasearch.errors import DataError

ARCHIVE = Path(__file__).resolve().parents[1] / "archive"

GOOD = '''"""A fine agent."""
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor


def vote(answers):
    return Counter(answers).most_common(1)[0][0]


def forward(self, taskInfo):
    agents = [LLMAgentBase(["thinking", "answer"], "CoT", temperature=0.8) for _ in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        outs = list(pool.map(lambda a: a([taskInfo], "Think step by step.")[1], agents))
    try:
        data = json.loads("{}")
    except ValueError:
        data = {}
    return vote([o.content for o in outs]) or getattr(outs[0], "content")
'''


def codes(code: str, policy: ValidationPolicy | None = None) -> list[tuple[str, int]]:
    return [(f.code, f.line) for f in validate_code(code, policy)]


def test_good_agent_passes() -> None:
    assert validate_code(GOOD) == []


@pytest.mark.parametrize("path", sorted(ARCHIVE.glob("*.py")), ids=lambda p: p.stem)
def test_seed_agents_pass(path: Path) -> None:
    assert validate_code(path.read_text()) == []


def test_syntax_error_has_line_and_column() -> None:
    [f] = validate_code("def forward(self, taskInfo):\n    return (1,\n")
    assert f.code == "syntax" and f.line == 2 and f.column >= 1


def test_parser_bomb_is_a_finding() -> None:
    [f] = validate_code("def forward(self, t):\n    return " + "(" * 500 + ")" * 500 + "\n")
    assert f.code == "syntax"


@pytest.mark.parametrize(("code", "expected"), [
    ("x = 1\n", [("no-forward", 0), ("top-level-statement", 1)]),
    ("def forward(self):\n    pass\n", [("bad-signature", 1)]),
    ("async def forward(self, t):\n    pass\n", [("bad-signature", 1)]),
    ("def forward(self, t):\n    pass\ndef forward(self, t):\n    pass\n", [("multiple-forward", 3)]),
    ("class A:\n    def forward(self, t):\n        pass\n", [("no-forward", 0), ("class-not-allowed", 1)]),
    ("@dec\ndef forward(self, t):\n    pass\n", [("decorator", 1)]),
])
def test_structure(code: str, expected: list[tuple[str, int]]) -> None:
    assert codes(code) == expected


def test_helpers_follow_the_policy() -> None:
    code = "def helper(x):\n    return x\n\ndef forward(self, t):\n    return helper(t)\n"
    assert codes(code) == []
    assert codes(code, ValidationPolicy(allow_helpers=False)) == [("helper-not-allowed", 1)]


@pytest.mark.parametrize(("stmt", "code"), [
    ("import os", "import-not-allowed"),
    ("import subprocess", "import-not-allowed"),
    ("from os import path", "import-not-allowed"),
    ("import importlib", "import-not-allowed"),
    ("import threading", "import-not-allowed"),
    ("from . import x", "relative-import"),
    ("from math import *", "star-import"),
    ("from concurrent.futures import ProcessPoolExecutor", "forbidden-name"),
    ("from random import _os", "forbidden-name"),
])
def test_imports(stmt: str, code: str) -> None:
    assert (code, 2) in codes(f"def forward(self, t):\n    {stmt}\n    return 1\n")


def test_allowed_imports_are_configurable() -> None:
    code = "import time\ndef forward(self, t):\n    return 1\n"
    assert codes(code) == [("import-not-allowed", 1)]
    policy = ValidationPolicy(allowed_imports=frozenset({"time"}))
    assert codes(code, policy) == []


@pytest.mark.parametrize(("expr", "code"), [
    ("eval('1')", "forbidden-name"),
    ("exec('1')", "forbidden-name"),
    ("compile('1', 'x', 'eval')", "forbidden-name"),
    ("open('/etc/passwd')", "forbidden-name"),
    ("__import__('os')", "forbidden-name"),
    ("globals()", "forbidden-name"),
    ("vars()", "forbidden-name"),
    ("breakpoint()", "forbidden-name"),
    ("setattr(t, 'x', 1)", "forbidden-name"),
    ("().__class__", "dunder-attribute"),
    ("t.__dict__", "dunder-attribute"),
    ("__builtins__", "dunder-name"),
    ("getattr(t, name)", "dynamic-getattr"),
    ("getattr(t, '__class__')", "forbidden-attribute"),
    ("getattr(t, '_replace')", "forbidden-attribute"),
    ("'{0.__class__}'.format(t)", "dunder-string"),
    ("'__globals__'", "dunder-string"),
    ("(x for x in []).gi_frame", "forbidden-attribute"),
    ("t.f_back.f_globals", "forbidden-attribute"),
    ("int.mro()", "forbidden-attribute"),
])
def test_forbidden_expressions(expr: str, code: str) -> None:
    found = codes(f"def forward(self, t):\n    x = {expr}\n    return x\n")
    assert found and found[0] == (code, 2), found


def test_module_escapes_are_refused() -> None:
    code = ("import random\nimport typing\nimport dataclasses\n\ndef forward(self, t):\n"
            "    a = random._os\n    b = typing.sys\n    c = dataclasses.builtins\n    return 1\n")
    assert [c for c, _ in codes(code)] == ["forbidden-attribute"] * 3
    assert [line for _, line in codes(code)] == [6, 7, 8]


def test_monkeypatching_is_refused() -> None:
    code = ("import random\ndef forward(self, t):\n    LLMAgentBase.query = None\n"
            "    random.random = lambda: 4\n    Info.x += 1\n    return 1\n")
    assert codes(code) == [("monkeypatch", 3), ("monkeypatch", 4), ("monkeypatch", 5)]


def test_run_python_is_a_runtime_name_and_cannot_be_patched() -> None:
    code = ("def forward(self, taskInfo):\n    out = run_python('print(6 * 7)')\n"
            "    return out.strip()\n")
    assert codes(code) == []
    assert codes("def forward(self, t):\n    run_python.limits = None\n    return 1\n") == [
        ("monkeypatch", 2)]


def test_the_validators_runtime_names_are_the_loaders() -> None:
    from metasearch.candidate.normalize import RUNTIME_NAMES as NORMALIZE_NAMES
    from metasearch.candidate.validate import RUNTIME_NAMES
    from metasearch.runtime.loader import NAMESPACE_NAMES

    assert RUNTIME_NAMES == set(NAMESPACE_NAMES)
    assert NORMALIZE_NAMES == {*NAMESPACE_NAMES, "AgentSystem"}


def test_global_and_loops_and_literals() -> None:
    code = ("def forward(self, t):\n    global X\n    while True:\n        pass\n"
            "    return 'a' * 10**9\n")
    assert codes(code) == [("global-statement", 2), ("infinite-loop", 3), ("huge-literal", 5)]
    ok = "def forward(self, t):\n    while True:\n        break\n    return 'a' * 10\n"
    assert codes(ok) == []


def test_size_limits() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(50))
    code = f"def forward(self, t):\n{body}    return 1\n"
    assert codes(code, ValidationPolicy(max_lines=20)) == [("too-long", 0)]
    deep = "def forward(self, t):\n" + "".join("    " * (i + 1) + "if t:\n" for i in range(6))
    deep += "    " * 7 + "return 1\n"
    assert ("too-deep", 8) in codes(deep, ValidationPolicy(max_depth=6))  # first too-deep line
    assert codes(deep, ValidationPolicy(max_depth=10)) == []
    assert codes("x" * 50_000, ValidationPolicy(max_chars=100)) == [("too-large", 0)]


def test_findings_read_well() -> None:
    findings = validate_code("import os\ndef forward(self, t):\n    return eval('1')\n")
    assert all(isinstance(f, Finding) and f.hint for f in findings)
    text = format_findings(findings)
    assert "line 1, column 8: [import-not-allowed] Importing `os` is not allowed." in text
    assert "line 3, column 12: [forbidden-name]" in text
    assert format_findings([]) == "No problems found."
    assert json.dumps([f.to_json() for f in findings])


def test_fingerprint_ignores_comments_docstrings_and_layout() -> None:
    a = '"""Doc."""\ndef forward(self, taskInfo):\n    """Inner."""\n    x = [1,2]  # c\n    return x\n'
    b = "def forward(self,taskInfo):\n\n    x = [\n        1, 2,\n    ]\n    return x\n"
    c = "def forward(self, taskInfo):\n    x = [1, 3]\n    return x\n"
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)
    assert fingerprint("def (:") == fingerprint("def  (:  ")
    assert fingerprint("def (:").startswith("raw:")


def test_validate_path_py_and_archive(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text(GOOD)
    report = validate_path(good)
    assert report["ok"] and report["entries"][0]["findings"] == []
    archive = tmp_path / "archive.json"
    archive.write_text(json.dumps([
        {"name": "ok", "code": GOOD, "fitness": "x"},
        {"name": "bad", "code": "import os\ndef forward(self, t):\n    return 1\n"},
        {"name": "dup", "code": GOOD + "# a comment\n"},
    ]))
    report = validate_path(archive)
    assert not report["ok"]
    assert [e["ok"] for e in report["entries"]] == [True, False, True]
    assert report["entries"][1]["findings"][0]["line"] == 1
    assert report["entries"][2]["duplicate_of"] == 0
    assert json.loads(json.dumps(report)) == report


def test_validate_path_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Cannot read"):
        validate_path(tmp_path / "missing.py")
    bad = tmp_path / "bad.json"
    bad.write_text('{"no": "code"}')
    with pytest.raises(DataError, match="not an ADAS archive"):
        validate_path(bad)


def test_a_keyword_argument_named_like_a_builtin_is_not_a_use_of_it():
    code = "def forward(self, taskInfo):\n    return dict(input=taskInfo.content, open=1)\n"
    assert validate_code(code) == []
    bad = validate_code("def forward(self, taskInfo):\n    return input('?')\n")
    assert [f.code for f in bad] == ["forbidden-name"] and "Info(" in bad[0].hint
