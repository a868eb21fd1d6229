"""A metasearch agent as one standalone module. It needs only ``litellm``.

Use it from Python::

    from agent import solve
    print(solve("What is 12 * 7?", model="openai/gpt-4o-mini"))

or from the command line::

    python agent.py "What is 12 * 7?" --model openai/gpt-4o-mini

An agent that names one of the campaign's other task models
(``LLMAgentBase(..., model="...")``, listed in ``ALTERNATIVES``) calls that
model; ``models={"local/qwen2.5-coder-1.5b": "openai/<name>"}`` (or
``--role-model local/qwen2.5-coder-1.5b=openai/<name>``) says where to find it
when it is one of metasearch's embedded ``local/`` models.

Any keyword argument of ``solve`` other than ``model`` and ``models`` goes to
``litellm.completion`` (``api_base``, ``api_key``, ``timeout`` ...), so an
OpenAI-compatible server works with ``model="openai/<name>", api_base=URL``.

The agent's code (``AGENT_SOURCE``) is the ``forward`` function exactly as
the archive holds it. It is executed in a fresh namespace per ``solve`` call
that holds ``Info`` and ``LLMAgentBase``, as in ADAS (and ``run_python`` if the
agent uses it), so nothing it defines can clash with this runtime. The runtime
builds the same prompts as metasearch's (ADAS's shape) and reads replies with the
campaign's reply protocol.

(In the metasearch package this file is the template of ``metasearch export
--format py``; the blocks between the ``<export>`` and the ``<tools>`` markers are
replaced.)
"""

from __future__ import annotations

import argparse
import builtins
import inspect
import json
import random
import re
import string
import sys
import types
from collections.abc import Iterable
from typing import Any, NamedTuple

# <export>
AGENT_ID = "template"
AGENT_NAME = "Chain-of-Thought"
PROTOCOL = "json"  # how replies are formatted: "json" (ADAS) or "sections"
ANSWER_HINT = "an integer"  # the suite's answer format, given to fields named *answer*
DEFAULT_MODEL = "openai/gpt-4o-mini"
MAX_TOKENS = 1024
ALTERNATIVES: tuple[str, ...] = ()  # the other models the campaign let agents name with model=
AGENT_SOURCE = """
def forward(self, taskInfo):
    cot = LLMAgentBase(["thinking", "answer"], "Chain-of-Thought Agent")
    thinking, answer = cot([taskInfo], "Think step by step, then give your final answer.")
    return answer
"""
# </export>

AGENT_FILENAME = "<agent>"

# <tools>
TOOLS: dict[str, Any] = {}  # names besides the ADAS API that the agent uses
# </tools>


class Info(NamedTuple):
    """A named piece of text and who produced it (ADAS's record)."""

    name: str = "info"
    author: str = "unknown"
    content: Any = ""
    iteration_idx: int = -1


# --------------------------------------------------------------------------- prompts


def describe_fields(fields: Iterable[str], answer_hint: str) -> dict[str, str]:
    """Field descriptions; fields whose name contains "answer" carry the answer hint."""
    hint = answer_hint.strip()
    if not hint:
        answer = "Your answer."
    elif hint.endswith("."):
        answer = f"Your answer. {hint}"
    else:
        answer = f"Your answer. Return ONLY {hint}, nothing else."
    return {f: answer if "answer" in f.lower() else f"Your {f}." for f in fields}


def format_instruction(protocol: str, descriptions: dict[str, str]) -> str:
    """The output-format part of the system message."""
    if protocol == "answer_line":
        fields = list(descriptions)
        lines = fields[1:] or fields
        text = (f"Write your {fields[0]} as plain text first." if len(fields) > 1
                else "Think it through in plain text first.")
        body = "\n".join(f"{f}: <{descriptions[f]}>" for f in lines)
        return (
            "# Output Format:\n"
            f"{text} Then end your reply with exactly these line(s), each starting with the "
            f"name and a colon:\n\n{body}\n\nPut nothing after the last line."
        )
    if protocol == "json":
        return (
            "# Output Format:\n"
            "Reply EXACTLY with the following JSON format.\n"
            f"{json.dumps(descriptions, indent=2, ensure_ascii=False)}\n"
            "Fill in every field listed above, and make the whole reply one well-formed "
            "JSON object with nothing before or after it."
        )
    sections = "\n\n".join(f"## {f}\n<{d}>" for f, d in descriptions.items())
    return (
        "# Output Format:\n"
        "Reply with exactly these markdown sections, in this order, each starting with "
        "its heading on a line of its own:\n\n"
        + sections
        + "\n\nWrite every section. Put nothing before the first heading and add no other headings."
    )


def render_user_prompt(infos: Iterable[Info], instruction: str, me: str) -> str:
    """Each Info as a section (the task first as "# Your Task:"), the instruction last."""
    text = ""
    for name, author, content, idx in infos:
        if author == me:
            author = f"{author} (yourself)"
        if name == "task":
            text += f"# Your Task:\n{content}\n\n"
        elif isinstance(idx, int) and idx != -1:
            text += f"### {name} #{idx + 1} by {author}:\n{content}\n\n"
        else:
            text += f"### {name} by {author}:\n{content}\n\n"
    return text + instruction


def response_format(protocol: str, fields: list[str]) -> dict[str, Any] | None:
    if protocol != "json":
        return None
    schema = {
        "type": "object",
        "properties": {f: {"type": "string"} for f in fields},
        "required": list(fields),
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "agent_reply", "schema": schema}}


# --------------------------------------------------------------------------- parsing


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _unfence(text: str) -> str:
    s = text.strip()
    m = re.fullmatch(r"```[\w+-]*[ \t]*\n?(.*?)\n?[ \t]*```", s, flags=re.DOTALL)
    return m.group(1).strip() if m else s


def _balanced_end(text: str, start: int) -> int | None:
    """Index just past the JSON object opened at ``start`` (braces in strings skipped)."""
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
            continue
        if c == '"':
            in_str = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def parse_json_reply(text: str, fields: list[str]) -> dict[str, str] | None:
    """The fields of the first JSON object in ``text`` (code fences and chatter tolerated)."""
    blocks = [m.group(1) for m in re.finditer(r"```[\w+-]*\n(.*?)```", text, re.DOTALL)]
    for block in [*blocks, text]:
        for m in list(re.finditer(r"\{", block))[:20]:
            end = _balanced_end(block, m.start())
            if end is None:
                continue
            try:
                obj = json.loads(block[m.start() : end], strict=False)
            except ValueError:
                continue
            if isinstance(obj, dict):
                lowered = {str(k).strip().lower(): v for k, v in obj.items()}
                out = {}
                for f in fields:
                    value = obj[f] if f in obj else lowered.get(f.lower())
                    if value is not None:
                        out[f] = _text(value)
                return out
    return None


def parse_sections_reply(text: str, fields: list[str]) -> dict[str, str] | None:
    """Split a reply at ``## field`` headings (or ``**field**:`` / ``field:`` labels)."""
    body = _unfence(text)
    markers = (
        r"^[ \t]*#{1,6}[ \t]*\**[ \t]*(%s)(?!\w)[ \t]*\**[ \t]*:?[ \t]*\**[ \t]*(.*)$",
        r"^[ \t]*\*\*[ \t]*(%s)(?!\w)[ \t]*:?[ \t]*\*\*[ \t]*:?[ \t]*(.*)$",
        r"^[ \t]*(%s)(?!\w)[ \t]*:[ \t]*(.*)$",
    )
    found: dict[str, tuple[int, int, str]] = {}  # field -> (start, end, rest of line)
    for f in fields:
        for strength, pattern in enumerate(markers):
            hits = list(re.finditer(pattern % re.escape(f), body, re.IGNORECASE | re.MULTILINE))
            if hits:
                m = hits[0] if strength == 0 else hits[-1]
                found[f] = (m.start(), m.end(), m.group(2))
                break
    if not found:
        return {fields[0]: body.strip()} if len(fields) == 1 and body.strip() else None
    order = sorted(found.items(), key=lambda kv: kv[1][0])
    out = {}
    for i, (f, (_, end, rest)) in enumerate(order):
        stop = order[i + 1][1][0] if i + 1 < len(order) else len(body)
        content = (rest + body[end:stop]).strip()
        if content.endswith("```") and content.count("```") % 2:
            content = content[:-3].rstrip()
        out[f] = _unfence(content)
    return out


def parse_answer_line_reply(text: str, fields: list[str]) -> dict[str, str] | None:
    """Free text for the first field, then the last ``field: value`` line of each other one."""
    body = _unfence(text)
    lines = fields[1:] or fields
    out: dict[str, str] = {}
    cut = len(body)
    for f in lines:
        regex = re.compile(rf"^[ \t>*#-]*\**[ \t]*(?:final[ \t]+)?{re.escape(f)}(?!\w)[ \t]*\**"
                           r"[ \t]*[:=][ \t]*\**[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)
        hits = list(regex.finditer(body))
        if hits:
            m = hits[-1]
            value = m.group(1).strip().strip("*").strip()
            if not value:
                value = next((ln.strip() for ln in body[m.end():].splitlines() if ln.strip()), "")
            out[f] = value
            cut = min(cut, m.start())
    if not out:
        return parse_sections_reply(text, fields)
    if len(fields) > 1:
        out[fields[0]] = body[:cut].strip()
    return out


def parse_reply(protocol: str, text: str, fields: list[str]) -> dict[str, str] | None:
    if protocol == "json":
        return parse_json_reply(text, fields)
    if protocol == "answer_line":
        return parse_answer_line_reply(text, fields)
    return parse_sections_reply(text, fields)


# --------------------------------------------------------------------------- the agent base


class LLMAgentBase:
    """An LLM call returning named output fields as a list of ``Info`` (ADAS's API).

    ``model`` is honoured as in the campaign that found the agent: one of
    ``ALTERNATIVES`` is called (through the ``models`` mapping given to
    :func:`solve`, if it names it); any other name, and None, means the model
    given to :func:`solve`.
    ``protocol=`` and ``max_tokens=`` (metasearch's extensions) pick this
    agent's reply protocol and lower the reply limit, as in the campaign.
    """

    _model: str = DEFAULT_MODEL
    _models: dict[str, str] = {}
    _kwargs: dict[str, Any] = {}

    def __init__(
        self,
        output_fields: list[str],
        agent_name: str,
        role: str = "helpful assistant",
        model: str | None = None,
        temperature: float = 0.5,
        *,
        protocol: str | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if isinstance(output_fields, str):
            output_fields = [output_fields]
        self.protocol = protocol or PROTOCOL
        self.max_tokens = min(max_tokens, MAX_TOKENS) if max_tokens else MAX_TOKENS
        self.output_fields = list(output_fields)
        self.agent_name = str(agent_name)
        self.role = str(role)
        self.model = model
        self.temperature = float(temperature)
        self.id = "".join(random.choices(string.ascii_letters + string.digits, k=4))

    def __repr__(self) -> str:
        return f"{self.agent_name} {self.id}"

    def generate_prompt(self, input_infos: list[Info], instruction: str) -> tuple[str, str]:
        descriptions = describe_fields(self.output_fields, ANSWER_HINT)
        system = f"You are a {self.role}.\n\n{format_instruction(self.protocol, descriptions)}"
        return system, render_user_prompt(input_infos, instruction, repr(self))

    def __call__(
        self, input_infos: list[Info], instruction: str, iteration_idx: int = -1
    ) -> list[Info]:
        infos = _flatten_infos(input_infos)
        system, user = self.generate_prompt(infos, instruction)
        fields = self.output_fields
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        text = self._complete(messages)
        parsed = parse_reply(self.protocol, text, fields)
        values = dict(parsed or {})
        missing = [f for f in fields if f not in values]
        if missing:  # one repair round, as metasearch does
            fmt = format_instruction(self.protocol, describe_fields(fields, ANSWER_HINT))
            messages += [
                {"role": "assistant", "content": text},
                {
                    "role": "user",
                    "content": f"Your reply could not be used: {_failure(self.protocol, parsed, missing)}. "
                    f"Reply again with the same content, in exactly this format.\n\n{fmt}",
                },
            ]
            again = parse_reply(self.protocol, self._complete(messages), fields) or {}
            values.update({f: v for f, v in again.items() if f not in values})
        me = repr(self)
        return [Info(f, me, values.get(f, ""), iteration_idx) for f in fields]

    query = __call__

    def _target(self) -> str:
        """The litellm model of this agent's calls."""
        if not (isinstance(self.model, str) and self.model in ALTERNATIVES):
            return self._model
        target = self._models.get(self.model, self.model)
        if target.startswith("local/"):
            raise RuntimeError(
                f"{self!r} calls {target}, one of metasearch's embedded models, which litellm "
                f"cannot reach. Map it to a model you can call: solve(question, models="
                f"{{{target!r}: 'openai/<name>'}}, ...) or --role-model {target}=openai/<name>."
            )
        return target

    def _complete(self, messages: list[dict[str, str]]) -> str:
        import litellm

        kwargs: dict[str, Any] = {
            "model": self._target(),
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "drop_params": True,
        }
        fmt = response_format(self.protocol, self.output_fields)
        if fmt is not None:
            kwargs["response_format"] = fmt
        kwargs.update(self._kwargs)
        try:
            response = litellm.completion(**kwargs)
        except litellm.ContextWindowExceededError as e:
            raise RuntimeError(
                f"The prompt of {self!r} is longer than the model's context window: {e}"
            ) from e
        except litellm.BadRequestError:
            if "response_format" not in kwargs or "response_format" in self._kwargs:
                raise
            del kwargs["response_format"]  # the endpoint refuses structured output
            response = litellm.completion(**kwargs)
        return response.choices[0].message.content or ""


def _failure(protocol: str, parsed: dict[str, str] | None, missing: list[str]) -> str:
    if parsed is not None:
        return "it lacks the field(s) " + ", ".join(repr(f) for f in missing)
    if protocol == "json":
        return "it does not contain a well-formed JSON object"
    if protocol == "answer_line":
        return "it does not end with the required `field: value` line(s)"
    return "none of the required `## <field>` section headings were found"


def _flatten_infos(input_infos: Any) -> list[Info]:
    if isinstance(input_infos, Info):
        return [input_infos]
    out: list[Info] = []
    for item in input_infos:
        if isinstance(item, list | tuple) and not isinstance(item, Info):
            out.extend(item)  # another agent's whole output list
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            out.append(Info("note", "User", str(item), -1))  # plain text, as the runtime does
        else:
            out.append(item)
    return out


# --------------------------------------------------------------------------- loading and solving


def to_answer(result: Any) -> str:
    """What ``forward`` returned, as answer text (an Info's content, or the string)."""
    if isinstance(result, Info):
        return result.content if isinstance(result.content, str) else str(result.content)
    if isinstance(result, list | tuple) and result and all(isinstance(x, Info) for x in result):
        named = [x for x in result if x.name == "answer"]
        return to_answer(named[-1] if named else result[-1])
    if result is None:
        raise TypeError("forward returned None instead of an answer")
    return result if isinstance(result, str) else str(result)


def load_agent(
    model: str = DEFAULT_MODEL, models: dict[str, str] | None = None, **litellm_kwargs: Any
) -> Any:
    """Execute ``AGENT_SOURCE`` in a fresh namespace; return the object with ``forward``.

    ``models`` maps a model the agent names (one of ``ALTERNATIVES``) to the one to call.
    """
    bound = type(
        "LLMAgentBase",
        (LLMAgentBase,),
        {"_model": model, "_models": dict(models or {}), "_kwargs": litellm_kwargs},
    )
    namespace: dict[str, Any] = {
        "__name__": "agent_code",
        "__builtins__": builtins,
        "LLMAgentBase": bound,
        "Info": Info,
        **TOOLS,
    }
    exec(compile(AGENT_SOURCE, AGENT_FILENAME, "exec"), namespace)
    forward = namespace["forward"]
    methods: dict[str, Any] = {"forward": forward}
    for name, value in namespace.items():  # helper functions become methods, as in metasearch
        if (
            isinstance(value, types.FunctionType)
            and value is not forward
            and value.__code__.co_filename == AGENT_FILENAME
        ):
            takes_self = list(inspect.signature(value).parameters)[:1] == ["self"]
            methods[name] = value if takes_self else staticmethod(value)
    return type("AgentSystem", (), methods)()


def solve(
    question: str,
    model: str = DEFAULT_MODEL,
    models: dict[str, str] | None = None,
    **litellm_kwargs: Any,
) -> str:
    """Answer ``question`` with the agent; extra keyword arguments go to ``litellm.completion``."""
    agent = load_agent(model, models, **litellm_kwargs)
    return to_answer(agent.forward(Info("task", "User", question, -1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Answer a question with the agent {AGENT_NAME}.")
    parser.add_argument("question", nargs="*", help="the question (read from stdin if omitted)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a litellm model string")
    parser.add_argument("--api-base", default=None, help="the endpoint URL, if not the default")
    parser.add_argument(
        "--role-model", action="append", default=[], metavar="NAMED=MODEL",
        help="call MODEL where the agent names NAMED (one of ALTERNATIVES); repeatable",
    )
    args = parser.parse_args(argv)
    question = " ".join(args.question) if args.question else sys.stdin.read()
    kwargs = {"api_base": args.api_base} if args.api_base else {}
    models = dict(pair.split("=", 1) for pair in args.role_model if "=" in pair)
    print(solve(question.strip(), model=args.model, models=models, **kwargs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
