"""Search spaces: the file format's errors, conditional parameters, draws, and rendering."""

from __future__ import annotations

import ast
import itertools
import random
from pathlib import Path

import pytest
from test_runtime_fakes import FakeTransport, requested_fields, settings, well_formed

from metasearch.candidate.normalize import normalize_proposal
from metasearch.candidate.validate import validate_code
from metasearch.errors import ConfigError
from metasearch.runtime.loader import load_agent
from metasearch.search.spaces import (
    OptunaDraw,
    RandomDraw,
    load_space,
    render,
    resolve_space_path,
    seeded_random,
)
from metasearch.search.spaces.blocks import ANSWERERS, ENSEMBLES, ROLE_ASSIGNMENTS

REASONING = Path(__file__).resolve().parents[1] / "search_spaces" / "reasoning.toml"


class Pick:
    """A draw that returns the values it is told to (else the last choice / the high end)."""

    def __init__(self, want: dict | None = None) -> None:
        self.want = want or {}
        self.asked: list[str] = []

    def int(self, name, low, high, *, step=1, log=False):
        self.asked.append(name)
        return self.want.get(name, high)

    def float(self, name, low, high, *, step=None, log=False):
        self.asked.append(name)
        return self.want.get(name, high)

    def categorical(self, name, choices):
        self.asked.append(name)
        value = self.want.get(name, choices[-1])
        assert value in choices, (name, value, choices)
        return value


def write(tmp_path: Path, text: str, name: str = "space.toml") -> Path:
    path = tmp_path / name
    path.write_text('[space]\nname = "t"\n' + text, encoding="utf-8")
    return path


def assert_clean(code: str) -> None:
    """What every rendered trial owes the campaign: no repair, no finding, one forward."""
    normalised = normalize_proposal(code)
    assert (normalised.code, normalised.changes, normalised.findings) == (code, [], [])
    assert validate_code(code) == []
    assert [n.name for n in ast.parse(code).body] == ["forward"]  # type: ignore[attr-defined]
    assert max(len(line) for line in code.splitlines()) <= 99


# --------------------------------------------------------------------------- rendering

# every combination that renders differently: debate rounds matter only in a debate, and a
# router never feeds a debate
GRID = [(a, e, refine, routing, rounds)
        for a, e, refine, routing, rounds in itertools.product(
            ANSWERERS, ENSEMBLES, (0, 1, 2), ROLE_ASSIGNMENTS, (1, 2))
        if (rounds == 1 or e == "debate") and (routing == "none" or e != "debate")]


@pytest.mark.parametrize("answerer,ensemble,refine,routing,rounds", GRID)
def test_every_block_combination_renders_to_a_clean_candidate(
        answerer, ensemble, refine, routing, rounds):
    space = load_space(REASONING)
    values = space.sample(Pick({"blocks.answerer": answerer, "blocks.ensemble": ensemble,
                                "blocks.refine_rounds": refine, "blocks.role_assignment": routing,
                                "debate.rounds": rounds}))
    code = render(space, values).code
    assert_clean(code)
    tree = ast.parse(code)
    names = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    agents = {"Principle Agent": answerer == "step_back",
              "Program-of-Thought Agent": answerer == "program_of_thought",
              "Final Decision Agent": ensemble == "debate",
              "Critic Agent": refine > 0,
              "Routing Agent": routing == "router" and ensemble != "debate"}
    assert {a for a in agents if a in names} == {a for a, used in agents.items() if used}
    assert ("Counter" in code) == (ensemble == "self_consistency")
    assert ("for i in range(max_refine_rounds)" in code) == (refine == 2)
    assert ("debate_instruction" in code) == (ensemble == "debate" and rounds == 2)
    assert ("run_python(code.content)" in code) == (answerer == "program_of_thought")


@pytest.mark.parametrize("ensemble", ["none", "self_consistency", "debate"])
def test_a_program_of_thought_trial_answers_with_its_programs_output(ensemble):
    """The program's last printed line is the answer; a failed program falls back to reasoning."""
    space = load_space(REASONING)
    values = space.sample(Pick({"blocks.answerer": "program_of_thought", "blocks.ensemble": ensemble,
                                "blocks.refine_rounds": 0, "self_consistency.samples": 3,
                                "debate.rounds": 1, "blocks.role_assignment": "none",
                                "roles.solver.protocol": "campaign", "roles.judge.protocol": "campaign"}))
    code = render(space, values).code
    assert_clean(code)

    def reply(req):
        if requested_fields(req) == ["thinking", "code"]:
            return well_formed(req, {"code": "print('working')\nprint(6 * 7)"})
        shown = req.messages[1]["content"]
        return well_formed(req, {"answer": "42" if "### program_output by Python:\nworking\n42" in shown
                                 else "41"})

    t = FakeTransport(reply)
    assert load_agent(code, settings(), t)("What is 6*7?") == "42"
    coder_calls = [r for r in t.requests if requested_fields(r) == ["thinking", "code"]]
    assert len(coder_calls) == (3 if ensemble == "self_consistency" else 1)
    if ensemble != "debate":  # the program answered: no reasoning call was needed
        assert len(t.requests) == len(coder_calls)
    broken = FakeTransport(lambda r: well_formed(r, {"code": "print(1 / 0)", "answer": "41"}))
    assert load_agent(code, settings(), broken)("What is 6*7?") == "41"  # reasoned instead


@pytest.mark.parametrize("protocol", ["campaign", "json", "sections", "answer_line"])
@pytest.mark.parametrize("max_tokens", [None, 256])
def test_role_settings_become_keywords_only_when_chosen(tmp_path, protocol, max_tokens):
    tokens = f"max_tokens = {max_tokens}\n" if max_tokens else ""
    space = load_space(write(tmp_path, (
        '[roles.solver]\ntemperature = 0.3\n'
        f'protocol = "{protocol}"\n{tokens}instruction = "mine"\n'
        '[roles.solver.instructions]\nmine = "Add the numbers."\n')))
    code = render(space, space.sample(Pick())).code
    assert_clean(code)
    call = next(n for n in ast.walk(ast.parse(code))
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "LLMAgentBase")
    keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    expected = {"temperature": 0.3}
    if protocol != "campaign":
        expected["protocol"] = protocol
    if max_tokens:
        expected["max_tokens"] = max_tokens
    assert keywords == expected
    assert 'cot_instruction = "Add the numbers."' in code


def test_a_trial_of_the_shipped_space_runs_and_reads_like_the_seeds():
    space = load_space(REASONING)
    agent = render(space, space.sample(RandomDraw(seeded_random(0, "g002-00"))))
    assert agent.name == "Step-back + Refine x1"
    assert "def forward(self, taskInfo):\n    principle_instruction = (\n" in agent.code
    assert "thinking, answer = solver([taskInfo, principle], cot_instruction)" in agent.code
    assert "[taskInfo] + [" not in agent.code  # list additions are folded
    assert "reasoning" in agent.thought and "answerer step_back" in agent.thought


# --------------------------------------------------------------------------- conditions

def test_conditional_parameters_are_drawn_only_when_active():
    space = load_space(REASONING)
    single = Pick({"blocks.ensemble": "none", "blocks.refine_rounds": 0,
                   "blocks.answerer": "chain_of_thought", "blocks.role_assignment": "none"})
    space.sample(single)
    assert not [n for n in single.asked if n.startswith(("debate.", "self_consistency.",
                                                          "roles.judge", "roles.critic",
                                                          "roles.principle", "roles.router"))]
    debate = Pick({"blocks.ensemble": "debate", "blocks.refine_rounds": 1})
    values = space.sample(debate)
    assert {"debate.agents", "debate.rounds", "roles.judge.protocol", "roles.critic.temperature",
            "roles.critic.instruction"} <= set(debate.asked)
    assert "blocks.role_assignment" not in debate.asked  # a router never feeds a debate
    assert "blocks.role_assignment" not in values and "roles.router.temperature" not in values
    assert values["roles.judge.temperature"] == 0.1  # fixed knobs are values, never drawn
    assert "roles.judge.temperature" not in debate.asked


def test_an_explicit_when_condition_and_the_drawing_order(tmp_path):
    space = load_space(write(tmp_path, (
        '[roles.solver]\n'
        'max_tokens = { kind = "categorical", choices = [128, 512], '
        'when = { "blocks.ensemble" = ["debate"] } }\n'
        '[blocks]\n'
        'ensemble = { kind = "categorical", choices = ["none", "debate"] }\n')))
    names = [p.name for p in space.params]
    assert names.index("blocks.ensemble") < names.index("roles.solver.max_tokens")
    off = Pick({"blocks.ensemble": "none"})
    assert "roles.solver.max_tokens" not in space.sample(off) and \
        "roles.solver.max_tokens" not in off.asked
    assert space.sample(Pick({"blocks.ensemble": "debate"}))["roles.solver.max_tokens"] == 512


def test_an_optuna_trial_drives_the_space_with_only_active_names():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(REASONING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    searched = {p.name for p in space.searched()}
    for _ in range(12):
        trial = study.ask()
        values = space.sample(OptunaDraw(trial))
        assert set(trial.params) == {k for k in values if k in searched}
        assert_clean(render(space, values).code)
        study.tell(trial, 0.0)


def test_random_draws_stay_in_bounds_and_on_the_step():
    draw = RandomDraw(random.Random(3))
    ints = {draw.int("n", 3, 7, step=2) for _ in range(200)}
    assert ints == {3, 5, 7}
    logs = [draw.int("k", 1, 1000, log=True) for _ in range(300)]
    assert min(logs) >= 1 and max(logs) <= 1000 and sum(x < 32 for x in logs) > 100
    floats = [draw.float("t", 0.1, 1.0, step=0.3) for _ in range(100)]
    assert {round(f, 6) for f in floats} == {0.1, 0.4, 0.7, 1.0}
    space_values = [load_space(REASONING).sample(RandomDraw(random.Random(s)))
                    ["roles.solver.temperature"] for s in range(30)]
    assert all(v == round(v, 1) for v in space_values)  # quantised to the step's decimals


def test_a_shipped_space_is_found_by_name_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_space_path("search_spaces/reasoning.toml") == REASONING
    assert resolve_space_path("reasoning") == REASONING
    assert load_space("reasoning").name == "reasoning"


# --------------------------------------------------------------------------- bad files

BAD = [
    ('[blocks]\nensemble = "debates"\n', "blocks.ensemble", "'debate'"),
    ('[blocks]\nrefine_rounds = { kind = "int", low = 0, high = 3 }\n',
     "blocks.refine_rounds", "0 to 2"),
    ('[roles.solver]\ntemperature = { kind = "float", low = 0.9, high = 0.1 }\n',
     "roles.solver.temperature", "above high"),
    ('[roles.solver]\ntemprature = 0.3\n', "roles.solver.temprature", "Did you mean 'temperature'"),
    ('[roles.solvr]\ntemperature = 0.3\n', "roles.solvr", "Did you mean 'solver'"),
    ('[roles.solver]\nprotocol = { kind = "categorical", choices = ["json", "yaml"] }\n',
     "roles.solver.protocol", "'answer_line'"),
    ('[roles.solver]\nmax_tokens = { kind = "float", low = 100.0, high = 200.0 }\n',
     "roles.solver.max_tokens", "cannot be a float parameter"),
    ('[roles.solver]\ntemperature = { kind = "normal", mean = 0.5 }\n',
     "roles.solver.temperature", 'kind = "int", "float" or "categorical"'),
    ('[roles.solver]\ntemperature = { kind = "float", low = 0.1 }\n',
     "roles.solver.temperature.high", "is missing"),
    ('[roles.solver]\ninstruction = "terse"\n', "roles.solver.instruction", "terse"),
    ('[roles.judge]\ntemperature = 0.2\n', "roles.judge.temperature", "never used"),
    ('[roles.solver]\nmodel = { kind = "categorical", choices = ["a", "b"] }\n',
     "roles.solver.model", "<provider>/<model>"),
    ('[blocks]\nensemble = "debate"\n[debate]\nagents = 4\n', "debate.agents", "personas"),
    ('[roles.solver]\nmax_tokens = { kind = "categorical", choices = [128, 256], '
     'when = { "blocks.ensembel" = "none" } }\n', "roles.solver.max_tokens.when",
     "'blocks.ensembel'"),
    ('[roles.solver]\nmax_tokens = { kind = "categorical", choices = [128, 256], '
     'when = { "blocks.ensemble" = "vote" } }\n', "roles.solver.max_tokens.when", "never hold"),
    ('[blocks]\nensemble = { kind = "categorical", choices = ["none", "none"] }\n',
     "blocks.ensemble", "listed twice"),
]


@pytest.mark.parametrize("text,field,detail", BAD, ids=[b[1] + "-" + str(i)
                                                         for i, b in enumerate(BAD)])
def test_a_bad_space_file_is_one_paragraph_naming_the_file_and_field(tmp_path, text, field,
                                                                     detail):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_space(path)
    message = str(err.value)
    assert message.startswith(f"Search space {path} has 1 invalid field: {field} "), message
    assert detail in message and "\n" not in message


def test_a_missing_or_broken_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*reasoning"):
        load_space(tmp_path / "nope.toml")
    (tmp_path / "broken.toml").write_text("[space\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_space(tmp_path / "broken.toml")
    (tmp_path / "bare.toml").write_text("[blocks]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"space is missing\. Expected the \[space\] table"):
        load_space(tmp_path / "bare.toml")


def test_the_readme_shows_the_code_the_renderer_gives():
    readme = (REASONING.parents[1] / "README.md").read_text(encoding="utf-8")
    shown = readme.split("The trial `g001-00` of seed 0", 1)[1].split("```python\n", 1)[1]
    space = load_space(REASONING)
    code = render(space, space.sample(RandomDraw(seeded_random(0, "g001-00")))).code
    assert shown.split("```", 1)[0] == code
