"""Reply protocols: lenient parsing, repair once, counted failures."""

from __future__ import annotations

import pytest
from test_runtime_fakes import FakeTransport, settings

from metasearch.errors import ConfigError
from metasearch.runtime.agent_base import bind_agent_class
from metasearch.runtime.context import RuntimeContext
from metasearch.runtime.info import Info
from metasearch.runtime.protocols import (
    AnswerLineProtocol,
    JsonProtocol,
    describe_fields,
    find_json_object,
    get_protocol,
    parse_sections,
)

F = ["thinking", "answer"]
TASK = Info("task", "User", "q", -1)


# -- JSON ----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    '{"thinking": "t", "answer": "42"}',
    '```json\n{"thinking": "t", "answer": "42"}\n```',
    '```\n{"thinking": "t", "answer": "42"}\n```\nHope this helps!',
    'Sure! Here it is: {"thinking": "t", "answer": "42"} -- and some trailing words {oops',
    '{"thinking": "t",\n "answer": 42}',
    '{"Thinking": "t", "ANSWER": "42"}',
])
def test_json_lenient(text):
    assert JsonProtocol().parse(text, F) == {"thinking": "t", "answer": "42"}


def test_json_braces_and_quotes_inside_strings():
    text = 'x {"thinking": "a set {1, 2} and a \\"quoted } brace\\"", "answer": "{42}"} y'
    assert JsonProtocol().parse(text, F) == {"thinking": 'a set {1, 2} and a "quoted } brace"', "answer": "{42}"}


def test_json_nested_values_become_text():
    obj = JsonProtocol().parse('{"thinking": {"steps": [1, 2]}, "answer": true}', F)
    assert obj == {"thinking": '{"steps": [1, 2]}', "answer": "True"}


def test_json_literal_newlines_in_strings_are_tolerated():
    assert JsonProtocol().parse('{"thinking": "line1\nline2", "answer": "1"}', F)["thinking"] == "line1\nline2"


def test_json_truncated_object_is_closed():
    assert find_json_object('{"thinking": "a long thought that was cut') == {"thinking": "a long thought that was cut"}


def test_json_skips_invalid_first_object():
    assert find_json_object('{not json} then {"answer": "5"}') == {"answer": "5"}


def test_json_missing_and_unparseable():
    assert JsonProtocol().parse('{"thinking": "only"}', F) == {"thinking": "only"}
    assert JsonProtocol().parse("no json here", F) is None
    assert JsonProtocol().parse('["a list"]', F) is None


# -- sections --------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "## thinking\nt\n\n## answer\n42",
    "## Thinking\nt\n## ANSWER\n42\n",
    "# thinking\nt\n### answer:\n42",
    "```markdown\n## thinking\nt\n## answer\n42\n```",
    "## thinking\nt\n## answer\n```\n42\n```",
    "**thinking**: t\n**answer**: 42",
    "**Thinking:**\nt\n\n**Answer:** 42",
    "thinking: t\nanswer: 42",
    "## thinking\nt\nAnswer: 42",
    "## **thinking**\nt\n## **answer**\n42",
])
def test_sections_lenient(text):
    assert parse_sections(text, F) == {"thinking": "t", "answer": "42"}


def test_sections_heading_beats_loose_labels_and_keeps_body():
    text = "## thinking\nStep 1: x\nanswer: maybe 5\n### Sub-heading\nmore\n## answer\n42"
    out = parse_sections(text, F)
    assert out["answer"] == "42"
    assert "answer: maybe 5" in out["thinking"] and "### Sub-heading" in out["thinking"]


def test_sections_field_names_are_whole_words():
    assert parse_sections("## answers\nx\n## answer\n42", ["answer"]) == {"answer": "42"}


def test_sections_missing_field_and_failure():
    assert parse_sections("## thinking\nonly thoughts", F) == {"thinking": "only thoughts"}
    assert parse_sections("just some text", F) is None
    assert parse_sections("just some text", ["answer"]) == {"answer": "just some text"}
    assert parse_sections("   ", ["answer"]) is None


def test_describe_fields_and_unknown_protocol():
    assert describe_fields(["thinking", "final_answer"], "an integer") == {
        "thinking": "Your thinking.",
        "final_answer": "Your answer. Return ONLY an integer, nothing else.",
    }
    with pytest.raises(ConfigError, match="'json', 'sections', 'answer_line'"):
        get_protocol("auto")


# -- repair ----------------------------------------------------------------------

def _call(protocol, replies, fields=F):
    t = FakeTransport(replies=list(replies))
    ctx = RuntimeContext(settings(protocol), t)
    with ctx.task_scope("q"):
        out = bind_agent_class(ctx)(fields, "A")([TASK], "Solve.")
    return [i.content for i in out], t


@pytest.mark.parametrize("protocol,bad,good", [
    ("json", "I think the answer is 42.", '{"thinking": "t", "answer": "42"}'),
    ("sections", "I think the answer is 42.", "## thinking\nt\n## answer\n42"),
])
def test_repair_once_then_success(protocol, bad, good):
    values, t = _call(protocol, [bad, good])
    assert values == ["t", "42"]
    assert len(t.requests) == 2
    assert t.notes == {"repair": 1}
    repair = t.requests[1].messages
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[2]["content"] == bad
    assert "could not be used" in repair[3]["content"] and "# Output Format:" in repair[3]["content"]
    assert t.requests[1].response_format == t.requests[0].response_format


def test_repair_fails_too_counted():
    values, t = _call("json", ["nonsense", "still nonsense"])
    assert values == ["", ""]
    assert len(t.requests) == 2
    assert t.notes == {"repair": 1, "parse_failure": 1, "missing_field": 2}


def test_missing_field_triggers_repair_and_keeps_partial():
    values, t = _call("json", ['{"thinking": "first"}', '{"thinking": "second"}'])
    assert values == ["second", ""]
    assert t.notes == {"repair": 1, "missing_field": 1}
    assert "lacks the field(s) 'answer'" in t.requests[1].messages[3]["content"]


def test_partial_first_reply_completed_by_repair():
    values, t = _call("sections", ["## thinking\nt", "## answer\n42"])
    assert values == ["t", "42"]
    assert t.notes == {"repair": 1}


def test_no_repair_when_reply_is_good():
    values, t = _call("sections", ["## thinking\nt\n## answer\n42"])
    assert values == ["t", "42"] and len(t.requests) == 1 and t.notes == {}


# -- answer_line, and the per-agent protocol= / max_tokens= keywords -----------------

@pytest.mark.parametrize("text,fields,expected", [
    ("First 7 + 5 = 12.\nThen 12 * 2 = 24.\nanswer: 24", F,
     {"thinking": "First 7 + 5 = 12.\nThen 12 * 2 = 24.", "answer": "24"}),
    ("I add them.\n**Final Answer:** 42", F, {"thinking": "I add them.", "answer": "42"}),
    ("The answer: is unclear at first.\nanswer:\n42\n", F,
     {"thinking": "The answer: is unclear at first.", "answer": "42"}),
    ("Looks fine to me.\ncorrect: True", ["feedback", "correct"],
     {"feedback": "Looks fine to me.", "correct": "True"}),
    ("So it is seven.\nanswer: 7", ["answer"], {"answer": "7"}),
    ("## thinking\nt\n## answer\n42", F, {"thinking": "t", "answer": "42"}),  # headings
])
def test_answer_line_reads_free_text_and_the_last_field_lines(text, fields, expected):
    assert AnswerLineProtocol().parse(text, fields) == expected


def test_answer_line_asks_for_the_final_lines_and_fails_without_them():
    p = AnswerLineProtocol()
    fmt = p.format_instruction(describe_fields(F, "an integer"))
    assert "Write your thinking as plain text first." in fmt
    assert "answer: <Your answer. Return ONLY an integer, nothing else.>" in fmt
    assert "thinking:" not in fmt
    assert p.parse("no final line at all", F) is None and p.response_format(F) is None


def test_an_agent_may_choose_its_own_protocol_and_a_lower_reply_limit():
    t = FakeTransport(replies=["I add.\nanswer: 42", '{"thinking": "t", "answer": "1"}'])
    ctx = RuntimeContext(settings("json"), t)
    agent_class = bind_agent_class(ctx)
    with ctx.task_scope("q"):
        out = agent_class(F, "A", protocol="answer_line", max_tokens=64)([TASK], "Solve.")
    assert [i.content for i in out] == ["I add.", "42"]
    req = t.requests[0]
    assert req.response_format is None and req.max_tokens == 64
    assert "end your reply with exactly these line(s)" in req.messages[0]["content"]
    with ctx.task_scope("q2"):
        agent_class(F, "B", max_tokens=10**6)([TASK], "Solve.")
    assert t.requests[1].max_tokens == ctx.settings.max_tokens  # never above the run's limit
    with pytest.raises(TypeError, match="reply protocol is one of"):
        agent_class(F, "C", protocol="yaml")
    with pytest.raises(TypeError, match="max_tokens"):
        agent_class(F, "D", max_tokens=0)
