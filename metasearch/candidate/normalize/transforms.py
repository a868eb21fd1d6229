"""Text repairs done before parsing, and the node-level libcst transformers.

The passes in :mod:`.rewrites` and :mod:`.lifting` apply these; each records
what it changed so the caller can describe it in ``changes``.
"""

from __future__ import annotations

import re
import textwrap

import libcst as cst

INFO_FIELDS = ("name", "author", "content", "iteration_idx")
_INFO_DEFAULTS = {"name": '"answer"', "author": '"forward"', "content": '""', "iteration_idx": "-1"}


_HYPHENATED_DEF = re.compile(
    r"^[ \t]*(?:class|def)[ \t]+([A-Za-z_]\w*(?:-\w+)+)[ \t]*[(:]", re.MULTILINE
)


def _fix_hyphenated_names(code: str, changes: list[str]) -> str:
    """``class Step-by-StepSolver(...)``: a syntax error the 1.5B model makes (quickstart run 10).

    The agent's display name leaks into the class or function name; hyphens
    become underscores there and wherever that exact name is used.
    """
    for name in dict.fromkeys(_HYPHENATED_DEF.findall(code)):
        fixed = name.replace("-", "_")
        code = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", fixed, code)
        changes.append(f"renamed {name} to {fixed}: hyphens are not allowed in Python names")
    return code


def _strip_fences(code: str, changes: list[str]) -> str:
    lines = code.replace("\r\n", "\n").split("\n")
    kept = [ln for ln in lines if not re.match(r"^\s*(```|~~~)", ln)]
    if len(kept) != len(lines):
        changes.append("removed markdown code fences")
    text = "\n".join(kept)
    dedented = textwrap.dedent(text)
    if dedented != text:
        changes.append("removed indentation common to every line")
    return dedented.strip("\n") + "\n"


# ------------------------------------------------------------ transformers


class _Rewriter(cst.CSTTransformer):
    """Rewrite ``self.attr`` -> ``attr`` and ``self.m(...)`` -> ``m(self, ...)``."""

    def __init__(
        self,
        *,
        owners: set[str],
        attrs: set[str],
        methods: dict[str, bool],
        rename: dict[str, str] | None = None,
    ):
        self.owners = owners
        self.attrs = attrs
        self.methods = methods  # name -> whether it takes self
        self.rename = rename or {}

    def _owned(self, node: cst.BaseExpression) -> bool:
        return isinstance(node, cst.Name) and node.value in self.owners

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        f = updated.func
        if isinstance(f, cst.Attribute) and self._owned(f.value) and f.attr.value in self.methods:
            args = list(updated.args)
            if self.methods[f.attr.value]:
                args.insert(0, cst.Arg(cst.Name("self")))
            return updated.with_changes(func=cst.Name(f.attr.value), args=args)
        return updated

    def leave_Attribute(
        self, original: cst.Attribute, updated: cst.Attribute
    ) -> cst.BaseExpression:
        if self._owned(updated.value) and updated.attr.value in self.attrs:
            return cst.Name(updated.attr.value)
        return updated.with_changes(attr=original.attr)

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        new = self.rename.get(updated.value)
        return updated.with_changes(value=new) if new else updated

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        return updated.with_changes(keyword=original.keyword)


class _InfoFiller(cst.CSTTransformer):
    """Spell out the fields an ``Info(...)`` call leaves out."""

    def __init__(self) -> None:
        self.filled: list[str] = []

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not (isinstance(updated.func, cst.Name) and updated.func.value == "Info"):
            return updated
        if any(a.star for a in updated.args):
            return updated
        positional = [a for a in updated.args if a.keyword is None]
        given = {a.keyword.value: a for a in updated.args if a.keyword is not None}
        if len(positional) > len(INFO_FIELDS) or set(given) - set(INFO_FIELDS):
            return updated
        missing = [f for f in INFO_FIELDS[len(positional) :] if f not in given]
        if not missing:
            return updated
        values = [a.value for a in positional]
        for f in INFO_FIELDS[len(positional) :]:
            values.append(given[f].value if f in given else cst.parse_expression(_INFO_DEFAULTS[f]))
        comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        args = [
            cst.Arg(v, comma=comma if i < len(values) - 1 else cst.MaybeSentinel.DEFAULT)
            for i, v in enumerate(values)
        ]
        self.filled += missing
        return updated.with_changes(args=args)


class _AnnotationStripper(cst.CSTTransformer):
    """Drop parameter and return annotations: no effect on behaviour, a common NameError."""

    def __init__(self) -> None:
        super().__init__()
        self.stripped = False

    def leave_Param(self, original: cst.Param, updated: cst.Param) -> cst.Param:
        if updated.annotation is None:
            return updated
        self.stripped = True
        return updated.with_changes(annotation=None)

    def leave_FunctionDef(
        self, original: cst.FunctionDef, updated: cst.FunctionDef
    ) -> cst.FunctionDef:
        if updated.returns is None:
            return updated
        self.stripped = True
        return updated.with_changes(returns=None)


#: Sampling and client settings a meta agent passes to LLMAgentBase by habit (OpenAI
#: or transformers style). The runtime owns sampling, so dropping them changes no
#: design; keywords that carry inputs (``inputs=``, ``instruction=``) stay findings.
#: ``max_tokens`` is kept: the runtime honours it (at most the run's limit).
_DROPPABLE_AGENT_SETTINGS = frozenset({
    "seed", "top_p", "top_k", "max_new_tokens", "stop", "presence_penalty",
    "frequency_penalty", "repetition_penalty", "timeout", "verbose", "debug", "n",
})


class _AgentSettingsDropper(cst.CSTTransformer):
    """Remove sampling keywords from ``LLMAgentBase(...)`` that the runtime does not take."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped: list[str] = []

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not (isinstance(updated.func, cst.Name) and updated.func.value == "LLMAgentBase"):
            return updated
        keep: list[cst.Arg] = []
        dropped: list[str] = []
        for arg in updated.args:
            if arg.keyword is not None and arg.keyword.value in _DROPPABLE_AGENT_SETTINGS:
                dropped.append(arg.keyword.value)
            else:
                keep.append(arg)
        if not dropped:
            return updated
        self.dropped += dropped
        if keep:
            keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return updated.with_changes(args=keep)


class _InfoFieldSetter(cst.CSTTransformer):
    """Turn ``answer.content = x`` into ``answer = answer._replace(content=x)``.

    ``Info`` is an immutable namedtuple, so the assignment raised
    ``AttributeError: can't set attribute`` on every task (measured with the
    1.5B meta agent); rebinding the name is what the code meant. ``name`` is
    left alone because agents (not only Infos) have names.
    """

    FIELDS = ("content", "author", "iteration_idx")

    def __init__(self) -> None:
        super().__init__()
        self.rewrote = False

    def _target(self, node: cst.BaseExpression) -> tuple[str, str] | None:
        if (
            isinstance(node, cst.Attribute)
            and isinstance(node.value, cst.Name)
            and node.value.value != "self"
            and node.attr.value in self.FIELDS
        ):
            return node.value.value, node.attr.value
        return None

    def _rebind(self, var: str, field: str, value: cst.BaseExpression) -> cst.Assign:
        self.rewrote = True
        call = cst.Call(
            func=cst.Attribute(value=cst.Name(var), attr=cst.Name("_replace")),
            args=[cst.Arg(value=value, keyword=cst.Name(field),
                          equal=cst.AssignEqual(cst.SimpleWhitespace(""),
                                                cst.SimpleWhitespace("")))],
        )
        return cst.Assign(targets=[cst.AssignTarget(cst.Name(var))], value=call)

    def leave_Assign(
        self, original: cst.Assign, updated: cst.Assign
    ) -> cst.BaseSmallStatement:
        if len(updated.targets) != 1:
            return updated
        target = self._target(updated.targets[0].target)
        return self._rebind(*target, updated.value) if target else updated

    def leave_AugAssign(
        self, original: cst.AugAssign, updated: cst.AugAssign
    ) -> cst.BaseSmallStatement:
        target = self._target(updated.target)
        if target is None:
            return updated
        op = type(updated.operator).__name__.removesuffix("Assign")
        binary = getattr(cst, op, None)
        if binary is None:
            return updated
        value = cst.BinaryOperation(
            left=cst.Attribute(value=cst.Name(target[0]), attr=cst.Name(target[1])),
            operator=binary(), right=updated.value,
        )
        return self._rebind(*target, value)
