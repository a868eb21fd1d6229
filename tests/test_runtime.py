"""Info, LLMAgentBase prompts and calls, sample indices."""

from __future__ import annotations

import json
import threading

import pytest
from test_runtime_fakes import FakeTransport, always, settings, well_formed

from metasearch.llm.types import ContextWindowError
from metasearch.runtime.agent_base import LLMAgentBase, bind_agent_class, render_user_prompt
from metasearch.runtime.context import RuntimeContext
from metasearch.runtime.info import Info


def bound(protocol="sections", transport=None, **kw):
    transport = transport or FakeTransport()
    ctx = RuntimeContext(settings(protocol, **kw), transport)
    return bind_agent_class(ctx), ctx, transport


TASK = Info("task", "User", "What is 6*7?", -1)


# -- Info ------------------------------------------------------------------

def test_info_is_a_namedtuple_with_adas_fields():
    info = Info("answer", "CoT ab12", "42", 0)
    assert isinstance(info, tuple)
    assert Info._fields == ("name", "author", "content", "iteration_idx")
    name, author, content, idx = info
    assert (name, author, content, idx) == ("answer", "CoT ab12", "42", 0)
    assert info[2] == "42" and info.content == "42"


def test_info_has_defaults_for_every_field():
    info = Info(content="x")
    assert info == Info("info", "unknown", "x", -1)
    assert Info() == ("info", "unknown", "", -1)
    assert info._replace(name="answer").name == "answer"


# -- prompt shape ------------------------------------------------------------

SECTIONS_SYSTEM = (
    "You are a helpful assistant.\n\n"
    "# Output Format:\n"
    "Reply with exactly these markdown sections, in this order, each starting with its heading "
    "on a line of its own:\n\n"
    "## thinking\n<Your thinking.>\n\n"
    "## answer\n<Your answer. Return ONLY an integer, nothing else.>\n\n"
    "Write every section. Put nothing before the first heading and add no other headings."
)

JSON_SYSTEM = (
    "You are a math teacher.\n\n"
    "# Output Format:\n"
    "Reply EXACTLY with the following JSON format.\n"
    '{\n  "thinking": "Your thinking.",\n  "answer": "Your answer. Return ONLY an integer, nothing else."\n}\n'
    "Fill in every field listed above, and make the whole reply one well-formed JSON object "
    "with nothing before or after it."
)


def test_sections_prompt_shape_exact():
    cls, ctx, t = bound("sections")
    with ctx.task_scope("q"):
        agent = cls(["thinking", "answer"], "Chain-of-Thought Agent")
        agent([TASK], "Solve it.")
    req = t.requests[0]
    assert [m["role"] for m in req.messages] == ["system", "user"]
    assert req.messages[0]["content"] == SECTIONS_SYSTEM
    assert req.messages[1]["content"] == "# Your Task:\nWhat is 6*7?\n\nSolve it."
    assert req.response_format is None


def test_json_prompt_shape_and_schema():
    cls, ctx, t = bound("json")
    with ctx.task_scope("q"):
        cls(["thinking", "answer"], "CoT", role="math teacher")([TASK], "Solve it.")
    req = t.requests[0]
    assert req.messages[0]["content"] == JSON_SYSTEM
    rf = req.response_format
    assert rf["type"] == "json_schema"
    schema = rf["json_schema"]["schema"]
    assert schema["required"] == ["thinking", "answer"]
    assert schema["properties"] == {"thinking": {"type": "string"}, "answer": {"type": "string"}}


def test_user_prompt_sections_iteration_and_yourself():
    cls, ctx, t = bound()
    with ctx.task_scope("q"):
        me = cls(["thinking", "answer"], "CoT")
        other = cls(["feedback"], "Critic")
        thinking, answer = me([TASK], "First.", 0)
        (feedback,) = other([TASK, thinking, answer], "Criticise.")
        me([TASK, thinking, answer, feedback], "Again.", 1)
    assert thinking.author == repr(me) and thinking.iteration_idx == 0
    assert t.requests[1].messages[1]["content"] == (
        "# Your Task:\nWhat is 6*7?\n\n"
        f"### thinking #1 by {me!r}:\n42\n\n"
        f"### answer #1 by {me!r}:\n42\n\n"
        "Criticise."
    )
    assert t.requests[2].messages[1]["content"] == (
        "# Your Task:\nWhat is 6*7?\n\n"
        f"### thinking #1 by {me!r} (yourself):\n42\n\n"
        f"### answer #1 by {me!r} (yourself):\n42\n\n"
        f"### feedback by {other!r}:\n42\n\n"
        "Again."
    )


def test_render_user_prompt_without_iteration_index():
    infos = [TASK, Info("hint", "Bob", "think", -1)]
    assert render_user_prompt(infos, "Go.", "me") == "# Your Task:\nWhat is 6*7?\n\n### hint by Bob:\nthink\n\nGo."


def test_answer_hint_variants():
    cls, ctx, t = bound(answer_hint="")
    with ctx.task_scope("q"):
        cls(["final_answer"], "A")([TASK], "x")
    assert "## final_answer\n<Your answer.>" in t.requests[0].messages[0]["content"]
    cls, ctx, t = bound(answer_hint="Return ONLY the letter of the correct choice.")
    with ctx.task_scope("q"):
        cls(["answer"], "A")([TASK], "x")
    assert "<Your answer. Return ONLY the letter of the correct choice.>" in t.requests[0].messages[0]["content"]


# -- agent object ------------------------------------------------------------

def test_repr_id_and_outputs():
    cls, ctx, t = bound()
    with ctx.task_scope("q"):
        agent = cls(["thinking", "answer"], "CoT Agent", model="gpt-3.5-turbo-0125", temperature=0.8)
        out = agent([TASK], "x")
    name, _, ident = repr(agent).rpartition(" ")
    assert name == "CoT Agent" and len(ident) == 4 and ident.isalnum()
    assert [i.name for i in out] == ["thinking", "answer"]
    assert all(i.author == repr(agent) and i.iteration_idx == -1 for i in out)
    req = t.requests[0]
    assert req.model == "fake/task-model"  # ADAS's model argument is ignored
    assert req.temperature == 0.8 and req.role == "task" and req.candidate == "cand-1"
    assert req.max_tokens == 1024


def test_agent_ids_deterministic_per_task():
    cls, ctx, _ = bound()
    with ctx.task_scope("question A"):
        a = [repr(cls(["answer"], "X")) for _ in range(3)]
    with ctx.task_scope("question A"):
        b = [repr(cls(["answer"], "X")) for _ in range(3)]
    assert a == b and len(set(a)) == 3


def test_extra_fields_dropped_and_missing_filled():
    t = FakeTransport(lambda req: '{"thinking": "t", "answer": 7, "bonus": "x"}')
    cls, ctx, _ = bound("json", transport=t)
    with ctx.task_scope("q"):
        out = cls(["thinking", "answer"], "A")([TASK], "x")
    assert [i.content for i in out] == ["t", "7"]


def test_a_returned_list_read_as_one_info_is_its_answer():
    cls, ctx, _ = bound()
    with ctx.task_scope("q"):
        out = cls(["thinking", "answer"], "A")([TASK], "x")
        only = cls(["verdict"], "B")([TASK], "x")
    assert out.content == "42" and out.name == "answer"  # `out = agent(...); out.content`
    assert only.name == "verdict"
    thinking, answer = out  # still a list
    assert answer.content == "42" and isinstance(out, list)
    with pytest.raises(AttributeError, match="no attribute 'foo'"):
        _ = out.foo


def test_an_ambiguous_list_read_as_one_info_explains_unpacking():
    cls, ctx, _ = bound()
    with ctx.task_scope("q"):
        out = cls(["feedback", "correct"], "Critic")([TASK], "x")
    with pytest.raises(AttributeError, match=r"unpack it: thinking, answer = agent\(\[taskInfo\], instruction\)"):
        _ = out.content


def test_string_input_explains_fix():
    cls, ctx, _ = bound()
    with ctx.task_scope("q"):
        agent = cls(["answer"], "A")
        with pytest.raises(TypeError, match=r"takes a list of Info.*agent\(\[taskInfo"):
            agent("What is 6*7?", "x")
        with pytest.raises(TypeError, match=r"input_infos\[1\].*is a dict.*Info\('note'"):
            agent([TASK, {"text": "x"}], "x")
        with pytest.raises(TypeError, match="instruction .* must be a string"):
            agent([TASK], ["x"])


def test_forgiving_inputs():
    cls, ctx, t = bound()
    with ctx.task_scope("q"):
        agent = cls("answer", "A")  # one field as a plain string
        prev = agent(TASK, "x")  # a single Info instead of a list
        agent([TASK, prev], "y")  # a nested output list is flattened
        agent([TASK, "Answer with an integer.", 7], "z")  # plain text items become notes
    assert agent.output_fields == ["answer"]
    assert f"### answer by {agent!r} (yourself):\n42" in t.requests[1].messages[1]["content"]
    assert "### note by User:\nAnswer with an integer.\n\n### note by User:\n7\n\nz" in (
        t.requests[2].messages[1]["content"])


def test_unbound_base_class_explains():
    agent = LLMAgentBase(["answer"], "A")
    with pytest.raises(RuntimeError, match="not bound to a run"):
        agent([TASK], "x")


def test_context_window_error_tells_to_shorten():
    def boom(req):
        raise ContextWindowError("maximum context length is 4096 tokens")

    cls, ctx, _ = bound(transport=FakeTransport(boom))
    with ctx.task_scope("q"), pytest.raises(ContextWindowError, match="shorter contexts"):
        cls(["answer"], "A")([TASK], "x")


def test_truncated_is_noted_and_flagged():
    t = FakeTransport(always("42"), finish_reason="length")
    cls, ctx, _ = bound(transport=t)
    with ctx.task_scope("q") as scope:
        cls(["answer"], "A")([TASK], "x")
    assert t.notes["truncated"] == 1 and scope.truncated
    assert t.note_candidates == {"cand-1"}


# -- sample indices ----------------------------------------------------------

def _five_samples(cls):
    agents = [cls(["thinking", "answer"], "CoT", temperature=0.8) for _ in range(5)]
    for a in agents:
        a([TASK], "Think.")


def test_identical_requests_get_distinct_deterministic_sample_indices():
    cls, ctx, t = bound()
    with ctx.task_scope("What is 6*7?"):
        _five_samples(cls)
    first = [r.sample_index for r in t.requests]
    assert first == [0, 1, 2, 3, 4]
    assert len({json.dumps(r.to_json(), sort_keys=True, default=str) for r in t.requests}) == 5
    with ctx.task_scope("What is 6*7?"):  # a rerun of the task
        _five_samples(cls)
    assert [r.sample_index for r in t.requests[5:]] == [0, 1, 2, 3, 4]
    assert [r.to_json() for r in t.requests[5:]] == [r.to_json() for r in t.requests[:5]]


def test_different_requests_each_start_at_zero():
    cls, ctx, t = bound()
    with ctx.task_scope("q"):
        a = cls(["answer"], "A")
        a([TASK], "one")
        a([TASK], "two")
        a([TASK], "one")
    assert [r.sample_index for r in t.requests] == [0, 0, 1]


def test_threads_spawned_by_forward_fall_back_to_per_load_counter():
    cls, ctx, t = bound()
    agents = [cls(["answer"], "A") for _ in range(5)]
    for a in agents:
        a.id = "same"  # make the requests identical across threads
    threads = [threading.Thread(target=a, args=([TASK], "x")) for a in agents]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r.sample_index for r in t.requests) == [0, 1, 2, 3, 4]


def test_well_formed_helper_roundtrip():
    cls, ctx, t = bound("json", transport=FakeTransport(lambda r: well_formed(r, {"answer": "9"})))
    with ctx.task_scope("q"):
        thinking, answer = cls(["thinking", "answer"], "A")([TASK], "x")
    assert answer.content == "9" and t.notes == {}
