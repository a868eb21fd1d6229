"""``LLMAgentBase``: the ADAS agent building block, over our transport and reply protocols.

Agent code never constructs a gateway or reads globals: ``load_agent`` builds a
per-load subclass bound to a :class:`RuntimeContext` (settings + transport)
with :func:`bind_agent_class` and puts it in the agent's namespace under the
name ``LLMAgentBase``.

``model`` picks the model of this agent's calls when it names the run's task
model or one of the campaign's allowed alternatives (``AgentSettings.alternatives``,
from ``models.task.alternatives``); that model's reply protocol and cache key go
with it, and the ledger counts the call under it. Any other name, and None,
means the run's task model (``AgentSettings.model``): ADAS archives name models
such as ``gpt-3.5-turbo``, and a run must be comparable across agents, so the
campaign decides which models agents may use. In the sandbox the host enforces
the same list: a request for any other model is refused, never routed.

Two optional keywords go beyond ADAS, for agents rendered from search spaces
(``metasearch.search.spaces``): ``protocol=`` picks this agent's reply protocol
(default: the run's) and ``max_tokens=`` lowers the run's reply limit for it.
"""

from __future__ import annotations

import random
import string
from typing import Any

from metasearch.llm.types import ContextWindowError, LLMRequest
from metasearch.runtime.context import RuntimeContext, request_key
from metasearch.runtime.info import Info
from metasearch.runtime.protocols import PROTOCOLS, describe_fields, get_protocol

UNPACK_HINT = (
    "LLMAgentBase(...) returns a list of Info, one per output field; unpack it: "
    "thinking, answer = agent([taskInfo], instruction)"
)


class InfoList(list):
    """The list an agent call returns.

    Read as one Info (``out.content``), it stands for its ``answer`` Info, or
    its only Info: that is what such code means, and small meta agents write it
    often (quickstart run 27). When that is ambiguous (``['feedback',
    'correct']``) the error explains unpacking instead.
    """

    def __getattr__(self, name: str) -> Any:
        if name in Info._fields:
            one = self._as_one()
            if one is not None:
                return getattr(one, name)
            raise AttributeError(f"a list of Info has no attribute '{name}'. {UNPACK_HINT}")
        raise AttributeError(f"'list' object has no attribute '{name}'")

    def _as_one(self) -> Info | None:
        infos = [i for i in self if isinstance(i, Info)]
        if len(infos) != len(self) or not infos:
            return None
        answers = [i for i in infos if i.name == "answer"]
        if len(answers) == 1:
            return answers[0]
        return infos[0] if len(infos) == 1 else None


def render_user_prompt(infos: list[Info], instruction: str, me: str) -> str:
    """ADAS's user message: each Info as a section, the instruction last."""
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


def _check_inputs(input_infos: Any, agent: LLMAgentBase) -> list[Info]:
    if isinstance(input_infos, Info):
        return [input_infos]  # a single Info: unambiguous, so accept it
    if isinstance(input_infos, str):
        raise TypeError(
            f"{agent!r} was called with a string as its first argument, but it takes a list "
            "of Info: agent([taskInfo, other_info], instruction). To pass your own text, wrap "
            "it: Info('note', 'User', text, -1)."
        )
    if not isinstance(input_infos, list | tuple):
        raise TypeError(
            f"{agent!r} takes a list of Info as its first argument, got "
            f"{type(input_infos).__name__}: call it as agent([taskInfo], instruction)."
        )
    out: list[Info] = []
    for i, item in enumerate(input_infos):
        if isinstance(item, Info):
            out.append(item)
        elif isinstance(item, list | tuple) and item and all(isinstance(x, Info) for x in item):
            out.extend(item)  # another agent's whole output list: flatten it
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            out.append(Info("note", "User", str(item), -1))  # plain text: unambiguous
        else:
            raise TypeError(
                f"input_infos[{i}] passed to {agent!r} is a {type(item).__name__}, not an Info. "
                "Pass the Info objects that agents return (e.g. [taskInfo, thinking, answer]); "
                "to pass your own text, wrap it: Info('note', 'User', text, -1)."
            )
    return out


class LLMAgentBase:
    """An LLM call that returns named output fields as ``Info`` (ADAS-compatible).

    >>> cot = LLMAgentBase(['thinking', 'answer'], 'Chain-of-Thought Agent')   # doctest: +SKIP
    >>> thinking, answer = cot([taskInfo], 'Think step by step, then answer.')  # doctest: +SKIP
    """

    _ctx: RuntimeContext | None = None

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
        if protocol is not None and protocol not in PROTOCOLS:
            raise TypeError(f"LLMAgentBase(protocol={protocol!r}): the reply protocol is one of "
                            f"{', '.join(repr(p) for p in PROTOCOLS)}; omit it for the run's.")
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                       or max_tokens < 1):
            raise TypeError(f"LLMAgentBase(max_tokens={max_tokens!r}) takes a whole number >= 1.")
        if isinstance(output_fields, str):
            output_fields = [output_fields]
        if not output_fields or not all(isinstance(f, str) and f for f in output_fields):
            raise TypeError(
                "LLMAgentBase's first argument must be a non-empty list of field names, "
                "e.g. LLMAgentBase(['thinking', 'answer'], 'Chain-of-Thought Agent')."
            )
        self.output_fields = list(output_fields)
        self.agent_name = str(agent_name)
        self.role = str(role)
        self.model = model  # as written; the call uses it only if the run allows it
        self.temperature = float(temperature)
        self.protocol = protocol  # None: the run's protocol
        self.max_tokens = max_tokens  # None: the run's limit; else at most the run's
        if self._ctx is not None:
            self.id = self._ctx.scope.new_agent_id()
        else:
            self.id = "".join(random.choices(string.ascii_letters + string.digits, k=4))

    def __repr__(self) -> str:
        return f"{self.agent_name} {self.id}"

    def _context(self) -> RuntimeContext:
        if self._ctx is None:
            raise RuntimeError(
                "This LLMAgentBase is not bound to a run; use the LLMAgentBase that "
                "load_agent puts in the agent's namespace."
            )
        return self._ctx

    def generate_prompt(self, input_infos: list[Info], instruction: str) -> tuple[str, str]:
        """(system message, user message) for a call, as ADAS builds them."""
        ctx = self._context()
        descriptions = describe_fields(self.output_fields, ctx.settings.answer_hint)
        protocol = self._protocol(ctx)
        system = f"You are a {self.role}.\n\n{protocol.format_instruction(descriptions)}"
        return system, render_user_prompt(input_infos, instruction, repr(self))

    def __call__(self, input_infos: list[Info], instruction: str, iteration_idx: int = -1) -> list[Info]:
        infos = _check_inputs(input_infos, self)
        if not isinstance(instruction, str):
            raise TypeError(
                f"The instruction passed to {self!r} must be a string, got "
                f"{type(instruction).__name__}: agent([taskInfo], 'Think step by step ...')."
            )
        system, user = self.generate_prompt(infos, instruction)
        values = self._ask(system, user)
        me = repr(self)
        return InfoList(Info(f, me, values[f], iteration_idx) for f in self.output_fields)

    query = __call__

    def _ask(self, system: str, user: str) -> dict[str, str]:
        """Call, parse, repair once if needed, and fill what is still missing with ''."""
        ctx = self._context()
        protocol = self._protocol(ctx)
        fields = self.output_fields
        messages = ({"role": "system", "content": system}, {"role": "user", "content": user})
        text = self._complete(messages, protocol.response_format(fields))
        parsed = protocol.parse(text, fields)
        values = dict(parsed or {})
        missing = [f for f in fields if f not in values]
        if missing:
            reason = (
                protocol.failure_reason() if parsed is None
                else "it lacks the field(s) " + ", ".join(repr(f) for f in missing)
            )
            fmt = protocol.format_instruction(describe_fields(fields, ctx.settings.answer_hint))
            repair = messages + (
                {"role": "assistant", "content": text},
                {"role": "user", "content": f"Your reply could not be used: {reason}. "
                 f"Reply again with the same content, in exactly this format.\n\n{fmt}"},
            )
            ctx.note("repair")
            text2 = self._complete(repair, protocol.response_format(fields), repair=True)
            parsed2 = protocol.parse(text2, fields)
            values.update(parsed2 or {})
            if parsed is None and parsed2 is None:
                ctx.note("parse_failure")
            missing = [f for f in fields if f not in values]
            if missing:
                ctx.note("missing_field", n=len(missing))
        return {f: values.get(f, "") for f in fields}

    def _protocol(self, ctx: RuntimeContext) -> Any:
        """This agent's reply protocol: its own, else that of the model it calls."""
        return get_protocol(self.protocol or ctx.settings.protocol_for(self._model(ctx)))

    def _model(self, ctx: RuntimeContext) -> str:
        return ctx.settings.model_for(self.model)

    def _complete(self, messages: tuple[dict[str, str], ...], response_format: dict | None,
                  *, repair: bool = False) -> str:
        ctx = self._context()
        s = ctx.settings
        model = self._model(ctx)
        max_tokens = min(self.max_tokens, s.max_tokens) if self.max_tokens else s.max_tokens
        key = request_key(
            model=model, messages=messages, temperature=self.temperature,
            max_tokens=max_tokens, response_format=response_format,
        )
        request = LLMRequest(
            model=model,
            messages=messages,
            temperature=self.temperature,
            max_tokens=max_tokens,
            response_format=response_format,
            sample_index=ctx.scope.next_sample_index(key),
            role="task",
            candidate=s.candidate,
        )
        try:
            response = ctx.complete(request, agent=repr(self), repair=repair)
        except ContextWindowError as e:
            size = sum(len(m["content"]) for m in messages)
            raise ContextWindowError(
                f"The prompt of {self!r} ({size} characters) is longer than the task model's "
                "context window. Design the agent to pass shorter contexts: fewer Infos per "
                "call (e.g. only the latest attempts, not all of them), or summarise first. "
                f"(Provider said: {e})"
            ) from e
        if response.truncated:
            ctx.note("truncated")
            ctx.scope.truncated = True
        return response.text


def bind_agent_class(ctx: RuntimeContext) -> type[LLMAgentBase]:
    """A subclass of :class:`LLMAgentBase` bound to one load's context."""
    return type("LLMAgentBase", (LLMAgentBase,), {"_ctx": ctx, "__module__": __name__,
                                                  "__doc__": LLMAgentBase.__doc__})
