"""Knobs: extraction, each finding, writing a trial's values in, baking; the runtime's
``tunable``; the shipped hybrid config; resume of a hybrid campaign after kill -9."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kill9_kit import kill_and_resume, run_to_end, starter

from metasearch.candidate.knobs import (
    Knob,
    bake_knobs,
    extract_knobs,
    knob_findings,
    set_knob_values,
    space_size,
)
from metasearch.candidate.normalize import normalize_proposal
from metasearch.candidate.validate import Finding, validate_code
from metasearch.config import load_config
from metasearch.runtime.tunable import tunable
from metasearch.search.hybrid import HybridStrategy, knob_validator
from metasearch.search.registry import StrategyContext, get_strategy
from metasearch.testing import TOY_SUITE
from metasearch.testing.campaigns import TOY_TASKS

ROOT = Path(__file__).resolve().parents[1]
KIT = Path(__file__).parent / "hybrid_kit.py"
child = starter(KIT)

AGENT = """\
def forward(self, taskInfo):
    from collections import Counter
    n = tunable('samples', 3, low=1, high=7)
    t = tunable(name="temperature", default=0.7, low=0.05, high=1.2, log=True)
    style = tunable('style', 'step by step', choices=['step by step', 'briefly'])
    shift = tunable('shift', -2, low=-5, high=5)
    solver = LLMAgentBase(['thinking', 'answer'], 'Solver', temperature=t)
    answers = []
    for _ in range(n + shift + 2):
        thinking, answer = solver([taskInfo], 'Solve it ' + style + '.')
        answers.append(str(answer.content))
    return Counter(answers).most_common(1)[0][0]
"""


def body(*lines: str) -> str:
    return "def forward(self, taskInfo):\n" + "".join(f"    {x}\n" for x in lines) + \
        "    return 'x'\n"


def test_extracts_every_kind_of_knob_in_source_order():
    knobs, findings = extract_knobs(AGENT)
    assert findings == []
    assert knobs == [
        Knob("samples", 3, "int", low=1, high=7, line=3),
        Knob("temperature", 0.7, "float", low=0.05, high=1.2, log=True, line=4),
        Knob("style", "step by step", "categorical", choices=("step by step", "briefly"), line=5),
        Knob("shift", -2, "int", low=-5, high=5, line=6),
    ]
    dists = {k.name: k.distribution() for k in knobs}
    assert dists["samples"].low == 1 and dists["samples"].high == 7 and dists["temperature"].log
    assert list(dists["style"].choices) == ["step by step", "briefly"]
    assert space_size(knobs) is None and space_size(knobs[:1] + knobs[2:]) == 7 * 2 * 11


def test_knob_code_normalises_unchanged_and_validates_clean():
    norm = normalize_proposal(AGENT)
    assert norm.ok and norm.code == AGENT and validate_code(AGENT) == []


@pytest.mark.parametrize(("line", "code", "message"), [
    ("x = tunable('a', k, low=1, high=3)", "knob-not-literal", "The default of `tunable('a', k"),
    ("x = tunable(name, 1, low=1, high=3)", "knob-not-literal", "The name of"),
    ("x = tunable('a', 1, low=1, high=n)", "knob-not-literal", "The high of"),
    ("x = tunable('a', 1, **opts)", "knob-not-literal", "passes *args or **kwargs"),
    ("x = tunable('a', 5, low=1, high=3)", "knob-default-out-of-range",
     "The default 5 of knob 'a' is outside [1, 3]."),
    ("x = tunable('a', 'c', choices=['a', 'b'])", "knob-default-out-of-range",
     "is not one of its choices"),
    ("x = tunable('a', 'x', choices=[])", "knob-empty-choices", "must be a non-empty list"),
    ("x = tunable('a', 1, choices=[1, 1])", "knob-bad-choices", "must be distinct"),
    ("x = tunable('a', 3, low=3, high=3)", "knob-empty-range", "has low=3 >= high=3"),
    ("x = tunable('a', 2, low=5, high=1)", "knob-empty-range", "has low=5 >= high=1"),
    ("x = tunable('a', 1.0, low=0.0, high=2.0, log=True)", "knob-empty-range", "log=True"),
    ("x = tunable('a', 1)", "knob-no-range", "has neither choices nor both low= and high="),
    ("x = tunable('a', 1, low=1, high=3, step=1)", "knob-bad-argument", "the keyword 'step'"),
    ("x = tunable('a', 1, low=1, high=3, choices=[1])", "knob-bad-argument",
     "gives both choices and a range"),
    ("x = tunable('a', 'b', low='a', high='z')", "knob-bad-argument", "must be numbers"),
    ("x = tunable('', 1, low=0, high=3)", "knob-bad-argument", "must be a non-empty string"),
    ("x = tunable('a')", "knob-bad-argument", "needs a name and a default value"),
    ("f = tunable", "knob-not-called", "`tunable` is used without calling it"),
])
def test_each_malformed_knob_is_a_finding(line, code, message):
    findings = knob_findings(body("k = 2", "name = 'a'", "n = 3", "opts = {}", line))
    assert len(findings) == 1, findings
    f = findings[0]
    assert isinstance(f, Finding) and f.code == code and message in f.message, f
    assert f.line == 6 and f.column == 9 and f.hint  # the validator's format: where, what, fix
    assert str(f).startswith(f"line 6, column 9: [{code}] ")


def test_duplicate_names_and_too_many_knobs_are_findings():
    dup = knob_findings(body("a = tunable('n', 1, low=1, high=3)",
                             "b = tunable('n', 2, low=1, high=3)"))
    assert [(f.code, f.line) for f in dup] == [("knob-duplicate", 3)]
    assert "declared twice (first on line 2)" in dup[0].message
    many = body(*(f"k{i} = tunable('k{i}', 1, low=0, high=3)" for i in range(4)))
    knobs, findings = extract_knobs(many, max_knobs=3)
    assert len(knobs) == 3 and [(f.code, f.line) for f in findings] == [("knob-too-many", 5)]
    assert "declares 4 knobs; at most 3" in findings[0].message


def test_the_hybrid_validator_adds_knob_findings_to_the_validators():
    code = body("x = tunable('a', 5, low=1, high=3)", "import os")
    codes = {f.code for f in knob_validator(6)(code)}
    assert "knob-default-out-of-range" in codes and len(codes) == 2  # plus the import finding


def test_a_trials_values_are_written_in_as_the_defaults():
    values = {"samples": 6, "temperature": 0.25, "style": "briefly", "shift": -4}
    code = set_knob_values(AGENT, values)
    knobs, findings = extract_knobs(code)
    assert findings == [] and {k.name: k.default for k in knobs} == values
    assert "tunable(name=\"temperature\", default=0.25, low=0.05, high=1.2, log=True)" in code
    assert code.replace("6, low=1", "3, low=1").replace("0.25", "0.7").replace(
        "'briefly', choices", "'step by step', choices").replace("-4, low", "-2, low") == AGENT


def test_baking_leaves_plain_code_with_the_values():
    baked = bake_knobs(set_knob_values(AGENT, {"samples": 5, "shift": -4}))
    assert "tunable" not in baked
    assert "    n = 5\n" in baked and "    t = 0.7\n" in baked and "    shift = -4\n" in baked
    assert "    style = 'step by step'\n" in baked
    assert validate_code(baked) == [] and normalize_proposal(baked).ok
    assert bake_knobs("def forward(self, taskInfo):\n    return 1\n").endswith("return 1\n")
    assert bake_knobs("def broken(:\n  tunable") == "def broken(:\n  tunable"


def test_the_runtime_tunable_returns_its_default_and_checks_it():
    assert tunable("n", 3, low=1, high=7) == 3
    assert tunable("s", "b", choices=["a", "b"]) == "b"
    with pytest.raises(ValueError, match="outside"):
        tunable("n", 9, low=1, high=7)
    with pytest.raises(ValueError, match="not one of"):
        tunable("s", "c", choices=["a", "b"])


def test_a_loaded_agent_can_call_tunable():
    from metasearch.llm.types import LLMResponse
    from metasearch.runtime.loader import load_agent
    from metasearch.runtime.settings import AgentSettings

    class Transport:
        def complete(self, request):
            return LLMResponse(text="## thinking\nx\n\n## answer\n4", model="m")

        def note(self, *a, **k):
            return None

    code = body("n = tunable('n', 4, low=1, high=7)").replace("return 'x'", "return str(n)")
    agent = load_agent(code, AgentSettings(model="m", answer_hint="an integer", protocol="sections"), Transport())
    assert agent("q") == "4"


# ------------------------------------------------------------------ config


def test_built_from_the_shipped_config(tmp_path):
    config = load_config(ROOT / "experiments" / "hybrid-local.toml")
    assert config.search.strategy == "hybrid" and config.suite.name == "arith"
    assert config.models.meta.model == "local/qwen2.5-coder-1.5b"
    assert config.models.task.model == "local/qwen2.5-coder-0.5b"

    class Gateway:
        def complete(self, request):
            raise AssertionError("building calls no model")

        def resolve_protocol(self, model):
            return "sections"

    ctx = StrategyContext(settings=config.search.settings, config=config, gateway=Gateway(),
                          suite=TOY_SUITE, val_tasks=TOY_TASKS[:3], directory=tmp_path)
    built = get_strategy("hybrid").build(ctx)
    assert isinstance(built, HybridStrategy)
    assert built.trials == config.search.settings.trials and built.batch == 2
    assert json.loads((tmp_path / "hybrid.json").read_text())["storage"].endswith(
        "hybrid.journal")


def test_a_bad_hybrid_table_is_one_clear_error(tmp_path):
    from metasearch.errors import ConfigError

    text = (ROOT / "experiments" / "hybrid-local.toml").read_text().replace(
        "trials = 4 ", "trails = 4 ")
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "search.hybrid.trails" in str(err.value) and "trials" in str(err.value)


# ------------------------------------------------------------------ kill -9


def study_trials(d: Path) -> list[tuple]:
    from metasearch.search.hybrid import open_studies

    out = []
    for study in open_studies(d).existing():
        out += [(t.user_attrs.get("candidate_id"), t.state.name, tuple(sorted(t.params.items())),
                 t.value) for t in study.trials
                if t.state.name != "FAIL" or t.user_attrs.get("candidate_id")]  # redraws
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return run_to_end(child, tmp_path_factory.mktemp("ref") / "c")


@pytest.mark.parametrize(("at", "parallel"), [(0.35, 1), (0.7, 2)])
def test_resume_after_kill_9_replays_without_rebilling(tmp_path, reference, at, parallel):
    d = tmp_path / "c"
    kill_and_resume(child, d, reference, at=at, parallel=parallel)
    assert study_trials(d) == study_trials(reference)
