"""Parsing the meta agent's replies, and the propose / reflexion / repair / debug loops."""

from __future__ import annotations

import json
import os

import pytest

from metasearch.llm.types import LLMRequest, LLMResponse
from metasearch.search.adas.context import (
    ArchiveEntry,
    MetaContext,
    TaskBrief,
    select_archive_context,
)
from metasearch.search.adas.parse import Draft, ProposalParseError, parse_proposal
from metasearch.search.adas.proposer import GENERATION_STRIDE, Proposer, yield_summary
from metasearch.search.feedback import DebugFeedback, TaskFeedback

GOOD = (
    "def forward(self, taskInfo):\n"
    "    cot = LLMAgentBase(['thinking', 'answer'], 'CoT')\n"
    "    thinking, answer = cot([taskInfo], 'Solve it step by step.')\n"
    "    return answer\n"
)
PLACEHOLDER = (
    "def check(answer):\n    pass\n\n"
    "def forward(self, taskInfo):\n"
    "    cot = LLMAgentBase(['thinking', 'answer'], 'CoT')\n"
    "    thinking, answer = cot([taskInfo], 'Solve.')\n"
    "    check(answer)\n"
    "    return answer\n"
)


def sections(code: str, name: str = "Verifier", thought: str = "Check the answer.") -> str:
    return f"## thought\n{thought}\n\n## name\n{name}\n\n## code\n```python\n{code}```\n"


# ---------------------------------------------------------------- parsing


def test_parse_sections_with_fence_and_trailing_prose():
    text = "Sure! Here it is.\n" + sections(GOOD) + "\nThis agent should work well."
    p = parse_proposal(text)
    assert p == Draft("Check the answer.", "Verifier", GOOD, format="sections")


def test_parse_sections_variants_inline_name_bold_headers_and_python_comments():
    text = (
        "**Thought:** verify then answer\n"
        "## Name: Double Check\n"
        "## Code\n```python\n# code below\n# name: not a header inside a fence\n" + GOOD + "```"
    )
    p = parse_proposal(text)
    assert p.name == "Double Check" and p.thought == "verify then answer"
    assert p.code.startswith("# code below") and "def forward" in p.code


def test_parse_json_in_fence_with_raw_newlines_and_bad_escapes():
    raw = '```json\n{"thought": "t {braces} \\"q\\"", "name": "N", "code": "def forward(self, taskInfo):\n    return \'\\d+\'"}\n```'
    p = parse_proposal(raw, expected="json")
    assert p.name == "N" and p.thought == 't {braces} "q"'
    assert p.code == "def forward(self, taskInfo):\n    return '\\d+'\n"
    assert p.format == "json"


def test_parse_json_first_object_with_code_wins_and_code_fence_inside_is_stripped():
    obj = {"thought": "x", "name": "A", "code": "```python\n" + GOOD + "```"}
    text = 'Plan: {"step": 1}\n' + json.dumps(obj) + "\n" + json.dumps({**obj, "name": "B"})
    p = parse_proposal(text)
    assert p.name == "A" and p.code == GOOD


def test_parse_debug_reply_both_formats_keeps_name():
    p = parse_proposal(
        "## debug_thought\nIt returned the list.\n## code\n```python\n" + GOOD + "```",
        kind="debug", fallback_name="Old", fallback_thought="old thought",
    )
    assert p.reflection == "It returned the list." and p.name == "Old" and p.thought == "old thought"
    p = parse_proposal(json.dumps({"debug_thought": "fix", "code": GOOD}), kind="debug",
                       fallback_name="Old")
    assert p.reflection == "fix" and p.code == GOOD


def test_parse_bare_code_block_is_accepted():
    p = parse_proposal("Here you go:\n```python\n" + GOOD + "```")
    assert p.code == GOOD and p.format == "code-only" and p.name


@pytest.mark.parametrize(
    "text, needle",
    [
        ("I think a debate agent would be great because it uses many views.", "not in the requested format"),
        ("", "empty"),
        ("## thought\nGood idea\n## name\nX\n## code\n", "no code"),
        ('{"thought": "a", "name": "b", "code": ""}', "no code"),
    ],
)
def test_parse_malformed_replies_give_reasons_for_the_llm(text, needle):
    with pytest.raises(ProposalParseError) as e:
        parse_proposal(text)
    assert needle in e.value.reason
    assert "## code" in e.value.reason or "code" in e.value.reason


def test_parse_truncated_reply_reason_says_so():
    with pytest.raises(ProposalParseError) as e:
        parse_proposal("## thought\nlong...", truncated=True, expected="json")
    assert "cut off" in e.value.reason and '"code"' in e.value.reason


# -------------------------------------------------------------- proposer


class Script:
    """A scripted completion function: canned replies in order, requests recorded."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests: list[LLMRequest] = []

    def __call__(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        text = self.replies.pop(0) if self.replies else sections(GOOD)
        if callable(text):
            text = text(request)
        return LLMResponse(text=text, model=request.model, prompt_tokens=10, completion_tokens=5)


CTX = MetaContext(
    TaskBrief("arithmetic", "an integer", (("1+1?", "2"),)),
    select_archive_context([ArchiveEntry("CoT", "think", GOOD, "Median: 40%", 0.4)]),
)


def make(script, **kw) -> Proposer:
    kw.setdefault("reflexion_rounds", 0)
    kw.setdefault("repair_rounds", 2)
    return Proposer(complete=script, model="scripted/meta", temperature=0.8, max_tokens=512,
                    output_format=kw.pop("output_format", "sections"), **kw)


def test_valid_first_try_no_reflexion():
    s = Script([sections(GOOD)])
    out = make(s).propose(CTX, generation=1, sample_index=2, candidate="g1-2")
    assert out.ok and out.status == "valid" and out.failure is None
    assert out.proposal.code == GOOD and out.proposal.name == "Verifier"
    assert out.stages == ("parsed", "normalised", "valid") == out.first_try_stages
    assert out.calls == 1 and out.prompt_tokens == 10
    req = s.requests[0]
    assert req.role == "meta" and req.candidate == "g1-2"
    assert req.sample_index == 1 * GENERATION_STRIDE + 2
    assert req.temperature == 0.8 and req.max_tokens == 512 and req.response_format is None


def test_reflexion_round_count_and_prompts():
    s = Script([sections(GOOD, name="A"), sections(GOOD, name="B"), sections(GOOD, name="C")])
    out = make(s, reflexion_rounds=2).propose(CTX, generation=1)
    assert out.ok and out.calls == 3 and out.proposal.name == "C"
    assert "Novelty" in s.requests[1].messages[-1]["content"]
    assert "never a list of Info" in s.requests[2].messages[-1]["content"]
    # each follow-up carries only the latest proposal, not the whole history
    assert len(s.requests[1].messages) == len(s.requests[2].messages) == 4
    assert "## name\nB" in s.requests[2].messages[2]["content"]
    stages = [m["stage"] for m in out.transcript if m["role"] == "assistant"]
    assert stages == ["propose", "reflexion-1", "reflexion-2"]


def test_unusable_reflexion_reply_keeps_previous_proposal():
    s = Script([sections(GOOD, name="A"), "I am not sure."])
    out = make(s, reflexion_rounds=1).propose(CTX, generation=1)
    assert out.ok and out.proposal.name == "A"
    assert any("kept the previous proposal" in m["content"] for m in out.transcript)


def test_repair_loop_invalid_then_fixed():
    s = Script([sections(PLACEHOLDER), sections(GOOD, name="Fixed")])
    out = make(s).propose(CTX, generation=1)
    assert out.ok and out.proposal.name == "Fixed" and out.repairs == 1 and out.calls == 2
    assert out.first_try_stages == ("parsed",)
    repair = s.requests[1].messages[-1]["content"]
    assert "check" in repair and "line 1 (`def check(answer):`)" in repair
    assert "## code" in repair


def test_normalisation_fixes_without_a_repair_call_and_lists_changes():
    wrapped = "class A:\n    def forward(self, taskInfo):\n        return LLMAgentBase\n\nprint(A().forward(None))\n"
    s = Script([sections(wrapped)])
    out = make(s).propose(CTX, generation=1)
    assert out.ok and out.calls == 1
    assert out.proposal.code == "def forward(self, taskInfo):\n    return LLMAgentBase\n"
    assert any("moved forward out of class A" in c for c in out.changes)


def test_validation_findings_are_fed_back_and_exhaustion_is_invalid():
    class F:
        code, line, column, message, hint = "import-refused", 2, 5, "import of os is refused", "Use stdlib math."

    s = Script([sections(GOOD)] * 3)
    out = make(s, repair_rounds=2, validate=lambda code: [F()]).propose(CTX, generation=1)
    assert out.status == "invalid" and out.failure == "invalid"
    assert out.reason.startswith("invalid: line 2 [import-refused] import of os is refused")
    assert out.calls == 3 and out.stages == ("parsed", "normalised")
    assert "import of os is refused" in s.requests[1].messages[-1]["content"]
    assert out.proposal is not None and out.proposal.code == GOOD


def test_duplicate_rejection_feeds_back_then_new_idea_passes():
    other = GOOD.replace("CoT", "Other")
    s = Script([sections(GOOD), sections(other, name="New")])
    out = make(s, is_duplicate=lambda code: code == GOOD).propose(CTX, generation=1)
    assert out.ok and out.proposal.name == "New"
    assert "same as one already in the archive" in s.requests[1].messages[-1]["content"]


def test_duplicate_until_exhausted():
    s = Script([sections(GOOD)] * 2)
    out = make(s, repair_rounds=1, is_duplicate=lambda code: True).propose(CTX, generation=1)
    assert out.failure == "duplicate" and out.reason.startswith("duplicate:")
    assert "valid" not in out.stages


def test_unparseable_replies_are_repaired_or_invalid_with_reason():
    s = Script(["no idea", sections(GOOD)])
    out = make(s).propose(CTX, generation=1)
    assert out.ok and "could not read" in s.requests[1].messages[-1]["content"]
    assert out.first_try_stages == () and out.stages == ("parsed", "normalised", "valid")

    s = Script(["no idea", "still none", "nothing"])
    out = make(s).propose(CTX, generation=1)
    assert out.status == "invalid" and out.failure == "unparseable"
    assert out.reason.startswith("unparseable: ") and out.proposal is None
    assert out.stages == () and out.calls == 3


def test_wrong_signature_is_invalid_with_reason():
    bad = "def forward(self, question, context):\n    return question\n"
    out = make(Script([sections(bad)]), repair_rounds=0).propose(CTX, generation=1)
    assert out.failure == "invalid" and "forward-signature" in out.reason


def test_json_output_format_sets_response_format():
    s = Script([json.dumps({"thought": "t", "name": "J", "code": GOOD})])
    out = make(s, output_format="json").propose(CTX, generation=3)
    assert out.ok and out.proposal.name == "J"
    assert s.requests[0].response_format == {"type": "json_object"}
    assert '"thought", "name", "code"' in s.requests[0].messages[1]["content"]


def test_requests_are_deterministic_across_runs_and_slots_differ():
    def run(slot):
        s = Script([sections(PLACEHOLDER), sections(GOOD)])
        out = make(s, reflexion_rounds=1, repair_rounds=1).propose(
            CTX, generation=2, sample_index=slot, candidate=f"c{slot}"
        )
        return s.requests, out

    a, out_a = run(0)
    b, out_b = run(0)
    assert [r.to_json() for r in a] == [r.to_json() for r in b]
    assert out_a.transcript == out_b.transcript
    c, _ = run(1)
    assert {r.sample_index for r in a} == {2000} and {r.sample_index for r in c} == {2001}
    assert [r.messages for r in a] == [r.messages for r in c]


def test_transcript_contents():
    s = Script([sections(PLACEHOLDER), sections(PLACEHOLDER), sections(GOOD)])
    out = make(s, reflexion_rounds=1, repair_rounds=1).propose(CTX, generation=1)
    roles = [(m["stage"], m["role"]) for m in out.transcript]
    assert roles[:3] == [("propose", "system"), ("propose", "user"), ("propose", "assistant")]
    assert ("reflexion-1", "user") in roles and ("repair-1", "assistant") in roles
    assert roles[-1] == ("result", "metasearch")
    md = out.transcript_markdown()
    assert "### propose · system" in md and "placeholder-body" in md


def test_debug_loop_fixes_code_and_keeps_name():
    fb = DebugFeedback("errors", 5, 5, (TaskFeedback("1+1?", error="AttributeError: 'list' object has no attribute 'content'", traceback="Traceback...\nAttributeError"),))
    s = Script(["## debug_thought\nUnpack the list.\n## code\n```python\n" + GOOD + "```"])
    prop = Draft("my idea", "Broken", "def forward(self, taskInfo):\n    return 1\n")
    out = make(s).debug(prop, fb, task=CTX.task, generation=4, sample_index=1, debug_round=2, candidate="c9")
    assert out.ok and out.proposal.name == "Broken" and out.proposal.thought == "my idea"
    assert out.proposal.reflection == "Unpack the list." and out.proposal.code == GOOD
    req = s.requests[0]
    assert req.role == "meta" and req.candidate == "c9" and req.sample_index == 4001
    assert "AttributeError" in req.messages[-1]["content"]
    assert req.messages[-2]["role"] == "assistant" and "Broken" in req.messages[-2]["content"]
    assert out.transcript[0]["stage"] == "debug-2"


def test_debug_then_repair():
    fb = DebugFeedback("all_zero", 3, 0, (TaskFeedback("1+1?", answer="two", gold="2"),))
    s = Script(["## debug_thought\nx\n## code\n```python\n" + PLACEHOLDER + "```", sections(GOOD)])
    prop = Draft("t", "N", GOOD)
    out = make(s).debug(prop, fb, task=CTX.task, generation=1)
    assert out.ok and out.calls == 2
    assert "every answer was wrong" in s.requests[0].messages[-1]["content"]


def test_yield_summary():
    outs = [
        make(Script([sections(GOOD)])).propose(CTX, generation=1),
        make(Script([sections(PLACEHOLDER), sections(GOOD)])).propose(CTX, generation=1),
        make(Script(["x", "y", "z"])).propose(CTX, generation=1),
    ]
    y = yield_summary(outs)
    assert y == {"proposals": 3, "parsed": 2, "parsed_first_try": 2, "normalised": 2,
                 "normalised_first_try": 1, "valid": 2, "valid_first_try": 1}


# ----------------------------------------------------- the real local model


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_real_local_meta_agent_propose_with_repair(tmp_path):
    """The 1.5B local model as meta agent: proposals through reflexion and repair.

    The honest contract: each outcome is either valid, or invalid with a reason.
    ``METASEARCH_PROBE_N`` proposals (default 1) run on 2 slots; the yield is printed.
    """
    pytest.importorskip("xllamacpp")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from concurrent.futures import ThreadPoolExecutor

    from metasearch.candidate.validate import fingerprint, validate_code
    from metasearch.llm import Gateway, GatewaySettings, ModelSettings, ResponseCache

    model = "local/qwen2.5-coder-1.5b"
    n = int(os.environ.get("METASEARCH_PROBE_N", "1"))
    cache_dir = os.environ.get("METASEARCH_PROBE_CACHE") or tmp_path / "responses"
    seeds = _seed_entries()
    archived = {fingerprint(e.code) for e in seeds}
    ctx = MetaContext(
        TaskBrief("short arithmetic word problems", "an integer",
                  (("Ann has 12 pens and gives away 5. How many are left?", "7"),)),
        select_archive_context(seeds, max_entries=3, max_chars=2500),
    )
    settings = GatewaySettings(
        # 700 tokens at the 1.5B's ~5 tok/s on two busy cores (xdist runs another real-model
        # test beside it) can pass the default 300 s per call
        models={model: ModelSettings(n_parallel=2, n_threads=2, n_ctx_per_slot=4096,
                                     timeout_s=900)}
    )
    with Gateway(settings=settings, cache=ResponseCache(directory=cache_dir)) as gw:
        proposer = Proposer(
            complete=gw.complete, model=model, temperature=0.8, max_tokens=700,
            output_format=gw.resolve_protocol(model), reflexion_rounds=0, repair_rounds=2,
            validate=validate_code, is_duplicate=lambda code: fingerprint(code) in archived,
        )
        with ThreadPoolExecutor(2) as pool:
            outs = list(pool.map(
                lambda i: proposer.propose(ctx, generation=1, sample_index=i, candidate=f"probe-{i}"),
                range(n),
            ))
    for i, o in enumerate(outs):
        assert o.status in ("valid", "invalid")
        assert o.ok or o.reason
        (tmp_path / f"probe-{i}.md").write_text(o.transcript_markdown())
        print(f"probe-{i}: {o.status} {o.reason} changes={list(o.changes)} calls={o.calls} "
              f"stages={o.stages} first_try={o.first_try_stages}")
    print("yield:", yield_summary(outs), "transcripts in", tmp_path)


def _seed_entries() -> list[ArchiveEntry]:
    from pathlib import Path

    from metasearch.runtime.seeds import load_seed

    root = Path(__file__).resolve().parents[1] / "archive"
    out = []
    for name in ["chain_of_thought", "self_consistency"]:
        seed = load_seed(root / f"{name}.py")
        out.append(ArchiveEntry(seed.name, seed.thought, seed.code, "not evaluated", None))
    return out


def test_validator_finding_repeating_a_normalisation_finding_is_shown_once():
    class F:
        code, line, column, message, hint = "bad-signature", 1, 1, "VALIDATOR SAYS SIGNATURE", ""

    bad = "def forward(self, question, context):\n    return LLMAgentBase\n"
    s = Script([sections(bad), sections(GOOD)])
    out = make(s, validate=lambda code: [F()] if "question" in code else []).propose(CTX, generation=1)
    assert out.ok
    repair = s.requests[1].messages[-1]["content"]
    assert "forward has the signature" in repair and "VALIDATOR SAYS" not in repair
