"""The problem finder: what normalisation could not fix, as findings with hints."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider, ScopeProvider

from metasearch.candidate.normalize._cst import (
    RUNTIME_NAMES,
    _is_placeholder,
    _names_in,
    _params,
    _returns,
)


@dataclass(frozen=True)
class NormalizeFinding:
    """A problem normalisation could not fix; same shape as ``validate.Finding``."""

    code: str
    line: int
    column: int
    message: str
    hint: str = ""


def _find_problems(module: cst.Module) -> list[NormalizeFinding]:
    wrapper = MetadataWrapper(module)
    pos = wrapper.resolve(PositionProvider)
    findings: list[NormalizeFinding] = []
    mod = wrapper.module
    forwards = [s for s in mod.body if isinstance(s, cst.FunctionDef) and s.name.value == "forward"]
    if not forwards:
        findings.append(
            NormalizeFinding(
                "no-forward",
                1,
                1,
                "There is no top-level function `forward`.",
                "Define the agent as `def forward(self, taskInfo):` at the top level, "
                "not inside a class.",
            )
        )
    for fn in forwards:
        start = pos[fn].start
        if fn.asynchronous is not None:
            findings.append(
                NormalizeFinding(
                    "forward-signature",
                    start.line,
                    start.column + 1,
                    "forward is `async def`; the runtime calls it as a plain function.",
                    "Write `def forward(self, taskInfo):` without async.",
                )
            )
        required = [p.name.value for p in _params(fn) if p.default is None]
        bad_star = fn.params.star_arg != cst.MaybeSentinel.DEFAULT or any(
            p.default is None for p in fn.params.kwonly_params
        )
        if required != ["self", "taskInfo"] or bad_star:
            findings.append(
                NormalizeFinding(
                    "forward-signature",
                    start.line,
                    start.column + 1,
                    f"forward has the signature ({', '.join(required) or 'no parameters'}); "
                    "it must be (self, taskInfo).",
                    "Write exactly `def forward(self, taskInfo):` and read the question "
                    "from taskInfo.content.",
                )
            )
    if forwards and not _is_placeholder(forwards[-1]) and not any(
        "LLMAgentBase" in _names_in(s) for s in mod.body if isinstance(s, cst.FunctionDef)
    ):
        start = pos[forwards[-1]].start
        findings.append(
            NormalizeFinding(
                "no-llm-call",
                start.line,
                start.column + 1,
                "forward never uses LLMAgentBase, so it cannot solve new questions: it only "
                "computes or hard-codes an answer.",
                "Create agents with LLMAgentBase([...], 'name') and call them on [taskInfo]; "
                "never hard-code numbers from the example question.",
            )
        )
    for fn in forwards:
        if not _returns(fn) and not _is_placeholder(fn):
            start = pos[fn].start
            findings.append(
                NormalizeFinding(
                    "no-return",
                    start.line,
                    start.column + 1,
                    "forward never returns, so every task would get None as its answer.",
                    "End forward with `return answer`: the Info (or string) holding the "
                    "final answer.",
                )
            )
    findings += _agent_misuse(mod, pos)
    findings += _undefined_names(wrapper, pos)
    for fn in _all_functions(mod):
        if _is_placeholder(fn):
            start = pos[fn].start
            what = "forward" if fn.name.value == "forward" else f"the helper {fn.name.value}"
            findings.append(
                NormalizeFinding(
                    "placeholder-body",
                    start.line,
                    start.column + 1,
                    f"{what} has no real body (only pass, ... or a docstring).",
                    "Write the body, or delete the helper and do that step inside forward "
                    "with an LLMAgentBase call.",
                )
            )
    return findings


#: LLMAgentBase's parameters (ADAS's signature).
AGENT_PARAMS = ("output_fields", "agent_name", "role", "model", "temperature")
#: Keyword-only extensions of metasearch's runtime (per-agent reply protocol and limit).
AGENT_KEYWORDS = ("protocol", "max_tokens")
_HOW_TO_CALL = (
    "Create the agent once, then call it with the inputs: agent = LLMAgentBase(['thinking', "
    "'answer'], 'Solver'); thinking, answer = agent([taskInfo, ...], 'instruction')."
)


def _agent_misuse(mod: cst.Module, pos: Any) -> list[NormalizeFinding]:
    """Constructor calls of LLMAgentBase that cannot work: unknown keywords, unpacking it."""
    findings: list[NormalizeFinding] = []

    def is_ctor(n: cst.BaseExpression | None) -> bool:
        return isinstance(n, cst.Call) and isinstance(n.func, cst.Name) and (
            n.func.value == "LLMAgentBase")

    class V(cst.CSTVisitor):
        def visit_Call(self, n: cst.Call) -> None:
            if not is_ctor(n):
                return
            unknown = [a.keyword.value for a in n.args
                       if a.keyword is not None
                       and a.keyword.value not in AGENT_PARAMS + AGENT_KEYWORDS]
            positional = [a for a in n.args if a.keyword is None and not a.star]
            if unknown or len(positional) > len(AGENT_PARAMS):
                start = pos[n].start
                what = (f"`{unknown[0]}=` is not one of its parameters" if unknown
                        else f"it was given {len(positional)} positional arguments")
                findings.append(NormalizeFinding(
                    "agent-arguments", start.line, start.column + 1,
                    f"LLMAgentBase takes ({', '.join(AGENT_PARAMS)}, and the keywords "
                    f"{' and '.join(AGENT_KEYWORDS)}): {what}. The inputs "
                    "go to the agent's call, not to LLMAgentBase.", _HOW_TO_CALL))

        def visit_Assign(self, n: cst.Assign) -> None:
            if is_ctor(n.value) and any(isinstance(t.target, cst.Tuple | cst.List)
                                        for t in n.targets):
                start = pos[n].start
                findings.append(NormalizeFinding(
                    "agent-not-called", start.line, start.column + 1,
                    "This line unpacks LLMAgentBase(...) itself: that creates an agent but "
                    "never calls the model.", _HOW_TO_CALL))

    mod.visit(V())
    return findings


_TYPING_NAMES = frozenset({"Any", "Callable", "Dict", "List", "Optional", "Sequence", "Set",
                           "Tuple", "Union"})


def _undefined_names(wrapper: MetadataWrapper, pos: Any) -> list[NormalizeFinding]:
    """Names read but never bound (nor builtins, nor runtime names): a NameError waiting.

    Catches them before any task is spent on the agent. Scope-based, without
    flow analysis, so a name bound anywhere in reach counts as defined.
    """
    scopes = wrapper.resolve(ScopeProvider)
    findings: list[NormalizeFinding] = []
    seen: set[str] = set()
    accesses = [a for sc in {s for s in scopes.values() if s is not None} for a in sc.accesses]
    for access in sorted(accesses, key=lambda a: (pos[a.node].start.line, pos[a.node].start.column)):
        node = access.node
        name = getattr(node, "value", None)
        if access.referents or not isinstance(name, str) or name in RUNTIME_NAMES or name in seen:
            continue
        if access.is_annotation:  # a local variable's annotation is never evaluated
            continue
        seen.add(name)
        start = pos[node].start
        if name in _TYPING_NAMES:
            hint = ("Drop the type annotations: those on the def line are evaluated before "
                    "forward runs, so an import inside forward comes too late.")
        elif "agent" in name.lower():
            hint = (f"Create it first, e.g. {name} = LLMAgentBase(['thinking', 'answer'], "
                    f"'{name}'), or use an agent you already created.")
        else:
            hint = (f"Assign `{name}` before using it, or import it inside forward if it "
                    "comes from the standard library.")
        findings.append(NormalizeFinding(
            "undefined-name", start.line, start.column + 1,
            f"`{name}` is used but never defined (a NameError when the agent runs).", hint))
    return findings


def _all_functions(node: cst.CSTNode) -> Iterable[cst.FunctionDef]:
    found: list[cst.FunctionDef] = []

    class V(cst.CSTVisitor):
        def visit_FunctionDef(self, n: cst.FunctionDef) -> None:
            found.append(n)

    node.visit(V())
    return found
