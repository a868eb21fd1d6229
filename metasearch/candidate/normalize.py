"""Normalise a meta-agent proposal with libcst before it is validated.

Small meta agents write agents that are nearly right in predictable ways
(measured with the 1.5B local model): ``forward`` as a method of a new class,
fake redefinitions of ``Info`` / ``LLMAgentBase``, helper stubs, driver code at
the bottom. :func:`normalize_proposal` repairs what it safely can and reports
the rest as findings with line numbers (of the returned code) and hints:

- a ``forward`` inside a class is lifted to the top level; the class's other
  methods become top-level helpers, ``self.helper(x)`` calls become
  ``helper(self, x)`` and attributes set in ``__init__`` (or on the class)
  become locals initialised at the start of the functions that use them;
- definitions, assignments and imports that shadow runtime names
  (:data:`RUNTIME_NAMES`) are dropped;
- extra top-level functions stay as helpers; unused placeholder helpers go;
- ``if __name__ == "__main__":`` blocks, top-level calls, loops and variables
  nothing uses are dropped;
- ``Info(...)`` calls missing fields get the remaining fields spelled out, so
  the code also runs under ADAS;
- ``forward(taskInfo)`` / ``forward(self, task)`` get the canonical signature.

Every change is described in ``changes``; what is left to the meta agent is in
``findings``. The function never raises on bad input: a syntax error is a
finding.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider, ScopeProvider

RUNTIME_NAMES = frozenset({"Info", "LLMAgentBase", "AgentSystem"})
INFO_FIELDS = ("name", "author", "content", "iteration_idx")
_INFO_DEFAULTS = {"name": '"answer"', "author": '"forward"', "content": '""', "iteration_idx": "-1"}


@dataclass(frozen=True)
class NormalizeFinding:
    """A problem normalisation could not fix; same shape as ``validate.Finding``."""

    code: str
    line: int
    column: int
    message: str
    hint: str = ""


@dataclass(frozen=True)
class NormalizeResult:
    code: str
    changes: list[str] = field(default_factory=list)
    findings: list[NormalizeFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def normalize_proposal(code: str) -> NormalizeResult:
    """Repair the usual structural mistakes in ``code``; report what remains."""
    changes: list[str] = []
    src = _fix_hyphenated_names(_strip_fences(code, changes), changes)
    try:
        module = cst.parse_module(src)
    except cst.ParserSyntaxError as e:
        return NormalizeResult(
            src,
            changes,
            [
                NormalizeFinding(
                    "syntax-error",
                    e.raw_line,
                    e.raw_column + 1,
                    f"The code is not valid Python: {e.message}",
                    "Fix the syntax at that line; check indentation, brackets and quotes.",
                )
            ],
        )
    module = _Normalizer(module, changes).run()
    out = module.code
    return NormalizeResult(out, changes, _find_problems(module))


# ------------------------------------------------------------------ helpers


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


def _src(node: cst.CSTNode) -> str:
    text = cst.Module(body=[]).code_for_node(node).strip()
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= 70 else first[:67] + "..."


def _names_in(node: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class V(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            found.add(n.value)

    node.visit(V())
    return found


def _called_names(node: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class V(cst.CSTVisitor):
        def visit_Call(self, n: cst.Call) -> None:
            f = n.func
            if isinstance(f, cst.Name):
                found.add(f.value)
            elif isinstance(f, cst.Attribute):
                found.add("." + f.attr.value)

    node.visit(V())
    return found


def _assigned_names(stmt: cst.BaseSmallStatement) -> list[str]:
    targets: list[cst.BaseExpression] = []
    if isinstance(stmt, cst.Assign):
        targets = [t.target for t in stmt.targets]
    elif isinstance(stmt, (cst.AnnAssign, cst.AugAssign)):
        targets = [stmt.target]
    names: list[str] = []
    for t in targets:
        if isinstance(t, cst.Name):
            names.append(t.value)
        elif isinstance(t, (cst.Tuple, cst.List)):
            names += [e.value.value for e in t.elements if isinstance(e.value, cst.Name)]
    return names


def _bound_names(stmt: cst.BaseSmallStatement) -> set[str] | None:
    """Names an import or assignment binds; None for ``from x import *``."""
    if isinstance(stmt, cst.Import):
        return {a.asname.name.value if a.asname else _dotted_root(a.name) for a in stmt.names}  # type: ignore[union-attr]
    if isinstance(stmt, cst.ImportFrom):
        if isinstance(stmt.names, cst.ImportStar):
            return None
        return {a.asname.name.value if a.asname else _dotted(a.name) for a in stmt.names}  # type: ignore[union-attr]
    return set(_assigned_names(stmt))


def _dotted_root(node: cst.BaseExpression) -> str:
    while isinstance(node, cst.Attribute):
        node = node.value
    return node.value if isinstance(node, cst.Name) else ""


def _is_main_guard(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.If) and "__name__" in _names_in(node.test)


def _params(fn: cst.FunctionDef) -> list[cst.Param]:
    return list(fn.params.posonly_params) + list(fn.params.params)


def _first_param(fn: cst.FunctionDef) -> str | None:
    ps = _params(fn)
    return ps[0].name.value if ps else None


def _decorators(fn: cst.FunctionDef) -> set[str]:
    out = set()
    for d in fn.decorators:
        if isinstance(d.decorator, cst.Name):
            out.add(d.decorator.value)
    return out


def _returns(fn: cst.FunctionDef) -> bool:
    """Whether ``fn`` itself has a ``return`` (nested functions and classes do not count)."""

    class _Finder(cst.CSTVisitor):
        found = False

        def visit_Return(self, node: cst.Return) -> None:
            self.found = True

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            return False

    finder = _Finder()
    fn.body.visit(finder)
    return finder.found


def _bound_anywhere(node: cst.CSTNode) -> set[str]:
    """Names assigned (plain, annotated, augmented or unpacked) anywhere in ``node``."""
    found: set[str] = set()

    class _Collector(cst.CSTVisitor):
        def visit_Assign(self, n: cst.Assign) -> None:
            found.update(_assigned_names(n))

        def visit_AnnAssign(self, n: cst.AnnAssign) -> None:
            found.update(_assigned_names(n))

        def visit_AugAssign(self, n: cst.AugAssign) -> None:
            found.update(_assigned_names(n))

    node.visit(_Collector())
    return found


def _is_placeholder(fn: cst.FunctionDef) -> bool:
    body = fn.body.body
    stmts: list[cst.BaseSmallStatement] = []
    for s in body:
        if not isinstance(s, cst.SimpleStatementLine | cst.BaseSmallStatement):
            return False
        stmts += list(s.body) if isinstance(s, cst.SimpleStatementLine) else [s]
    for s in stmts:
        if isinstance(s, cst.Pass):
            continue
        if isinstance(s, cst.Expr) and isinstance(
            s.value, cst.Ellipsis | cst.SimpleString | cst.ConcatenatedString
        ):
            continue
        if (
            isinstance(s, cst.Raise)
            and s.exc is not None
            and "NotImplementedError" in _names_in(s.exc)
        ):
            continue
        return False
    return True


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


# -------------------------------------------------------------- normaliser


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
_DROPPABLE_AGENT_SETTINGS = frozenset({
    "seed", "top_p", "top_k", "max_tokens", "max_new_tokens", "stop", "presence_penalty",
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


class _Normalizer:
    def __init__(self, module: cst.Module, changes: list[str]):
        self.module = module
        self.changes = changes

    def note(self, text: str) -> None:
        if text not in self.changes:
            self.changes.append(text)

    def run(self) -> cst.Module:
        body = self._lift_and_clean(list(self.module.body))
        body = self._choose_forward(body)
        body = self._drop_driver_code(body)
        body = self._drop_unused_placeholders(body)
        body = [self._fix_forward_signature(s) for s in body]
        body = [self._add_missing_return(s) for s in body]
        body = self._rewrite_self_calls(body)
        body = self._drop_unreachable_helpers(body)
        body = [
            s.with_changes(leading_lines=[cst.EmptyLine()])
            if i and isinstance(s, cst.FunctionDef | cst.ClassDef) and not s.leading_lines
            else s
            for i, s in enumerate(body)
        ]
        module = self.module.with_changes(body=body)
        stripper = _AnnotationStripper()
        module = module.visit(stripper)
        if stripper.stripped:
            self.note("removed type annotations from function signatures (they are evaluated "
                      "before forward runs, so names like List raised NameError)")
        dropper = _AgentSettingsDropper()
        module = module.visit(dropper)
        if dropper.dropped:
            kws = ", ".join(f"{k}=" for k in dict.fromkeys(dropper.dropped))
            self.note(f"removed LLMAgentBase settings it does not take ({kws}): the runtime "
                      "sets sampling itself; use temperature= to vary answers")
        setter = _InfoFieldSetter()
        module = module.visit(setter)
        if setter.rewrote:
            self.note("replaced assignments to Info fields (`x.content = ...`) with "
                      "`x = x._replace(content=...)`: Info is immutable")
        filler = _InfoFiller()
        module = module.visit(filler)
        if filler.filled:
            fields = ", ".join(sorted(set(filler.filled), key=INFO_FIELDS.index))
            self.note(f"filled in the missing Info fields ({fields}) in Info(...) calls")
        return module

    # -- classes and shadowing definitions
    def _lift_and_clean(self, body: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
        has_top_forward = any(
            isinstance(s, cst.FunctionDef) and s.name.value == "forward" for s in body
        )
        lifted_done = has_top_forward
        out: list[cst.BaseStatement] = []
        # Prefer lifting from a class whose forward has a real body.
        # A forward inside a fake Info / LLMAgentBase is the fake's method, never the agent.
        classes = [
            s
            for s in body
            if isinstance(s, cst.ClassDef)
            and s.name.value not in RUNTIME_NAMES - {"AgentSystem"}
            and self._class_forward(s)
        ]
        real = [c for c in classes if not _is_placeholder(self._class_forward(c))]
        preferred = (real or classes or [None])[0]
        for stmt in body:
            if isinstance(stmt, cst.ClassDef):
                name = stmt.name.value
                if stmt is preferred and not lifted_done:
                    out += self._lift_class(stmt)
                    lifted_done = True
                elif name in RUNTIME_NAMES:
                    self.note(f"removed class {name}: it is provided by the runtime")
                elif self._class_forward(stmt):
                    self.note(f"removed class {name}: only one forward is used")
                else:
                    out.append(stmt)
            elif isinstance(stmt, cst.FunctionDef) and stmt.name.value in RUNTIME_NAMES:
                self.note(f"removed function {stmt.name.value}: it is provided by the runtime")
            elif isinstance(stmt, cst.SimpleStatementLine):
                kept = self._drop_shadowing(stmt)
                if kept is not None:
                    out.append(kept)
            else:
                out.append(stmt)
        return out

    @staticmethod
    def _class_forward(cls: cst.ClassDef) -> cst.FunctionDef | None:
        for s in cls.body.body:
            if isinstance(s, cst.FunctionDef) and s.name.value == "forward":
                return s
        return None

    def _drop_shadowing(self, line: cst.SimpleStatementLine) -> cst.SimpleStatementLine | None:
        kept: list[cst.BaseSmallStatement] = []
        for s in line.body:
            if isinstance(s, cst.ImportFrom) and not isinstance(s.names, cst.ImportStar):
                aliases = [
                    a
                    for a in s.names
                    if (a.asname.name.value if a.asname else _dotted(a.name)) not in RUNTIME_NAMES
                ]
                if len(aliases) != len(s.names):
                    self.note("removed imports of Info/LLMAgentBase: the runtime provides them")
                    if not aliases:
                        continue
                    aliases[-1] = aliases[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                    s = s.with_changes(names=aliases)
            shadow = [n for n in _assigned_names(s) if n in RUNTIME_NAMES]
            if shadow:
                self.note(f"removed the assignment to {shadow[0]}: it is provided by the runtime")
                continue
            kept.append(s)
        if not kept:
            return None
        return line.with_changes(body=kept)

    def _lift_class(self, cls: cst.ClassDef) -> list[cst.BaseStatement]:
        cname = cls.name.value
        init_stmts: list[cst.BaseStatement] = []
        attrs: set[str] = set()
        methods: dict[str, cst.FunctionDef] = {}
        dropped: list[str] = []
        for s in cls.body.body:
            if isinstance(s, cst.FunctionDef):
                if s.name.value == "__init__":
                    init_stmts += self._init_body(s, attrs)
                elif s.name.value.startswith("__"):
                    dropped.append(s.name.value)
                else:
                    methods[s.name.value] = s
            elif isinstance(s, cst.SimpleStatementLine):
                for small in s.body:
                    attrs.update(_assigned_names(small))
                if any(_assigned_names(small) for small in s.body):
                    init_stmts.append(s)
        takes_self = {
            n: "staticmethod" not in _decorators(fn) and _first_param(fn) is not None
            for n, fn in methods.items()
        }
        rewriter = _Rewriter(owners={"self", cname}, attrs=attrs, methods=takes_self)
        init_rewritten = [s.visit(rewriter) for s in init_stmts]
        out: list[cst.BaseStatement] = []
        for name, fn in methods.items():
            if name in RUNTIME_NAMES:
                continue
            decos = [
                d
                for d in fn.decorators
                if not (
                    isinstance(d.decorator, cst.Name)
                    and d.decorator.value in ("staticmethod", "classmethod")
                )
            ]
            uses = bool(attrs & self._self_attrs(fn, {"self", cname}))
            new_fn = fn.visit(rewriter)
            assert isinstance(new_fn, cst.FunctionDef)
            if uses and init_rewritten:
                new_fn = _prepend(new_fn, init_rewritten)
            out.append(
                new_fn.with_changes(
                    decorators=decos, leading_lines=[cst.EmptyLine()] if out else []
                )
            )
        self.note(f"moved forward out of class {cname} to the top level")
        helpers = [n for n in methods if n != "forward"]
        if helpers:
            self.note(
                f"turned the methods {', '.join(helpers)} of class {cname} into top-level "
                "helper functions"
            )
        if attrs and init_rewritten:
            self.note(
                f"replaced self.<attribute> set in class {cname} by local variables set at the "
                "start of the functions that use them"
            )
        if dropped:
            self.note(f"dropped the special methods {', '.join(dropped)} of class {cname}")
        return out

    @staticmethod
    def _init_body(init: cst.FunctionDef, attrs: set[str]) -> list[cst.BaseStatement]:
        out: list[cst.BaseStatement] = []
        for s in init.body.body:
            if isinstance(s, cst.SimpleStatementLine):
                smalls = []
                for small in s.body:
                    if isinstance(small, cst.Expr) and (
                        "super" in _names_in(small)
                        or isinstance(small.value, cst.SimpleString | cst.ConcatenatedString)
                    ):
                        continue
                    if isinstance(small, cst.Assign | cst.AnnAssign):
                        targets = (
                            [t.target for t in small.targets]
                            if isinstance(small, cst.Assign)
                            else [small.target]
                        )
                        for t in targets:
                            if isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name):
                                attrs.add(t.attr.value)
                    smalls.append(small)
                if smalls:
                    out.append(s.with_changes(body=smalls))
            else:
                out.append(s)
        return out

    @staticmethod
    def _self_attrs(fn: cst.FunctionDef, owners: set[str]) -> set[str]:
        found: set[str] = set()

        class V(cst.CSTVisitor):
            def visit_Attribute(self, n: cst.Attribute) -> None:
                if isinstance(n.value, cst.Name) and n.value.value in owners:
                    found.add(n.attr.value)

        fn.visit(V())
        return found

    # -- forward selection
    def _choose_forward(self, body: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
        forwards = [
            i
            for i, s in enumerate(body)
            if isinstance(s, cst.FunctionDef) and s.name.value == "forward"
        ]
        if len(forwards) > 1:
            keep = forwards[-1]
            body = [s for i, s in enumerate(body) if i == keep or i not in forwards]
            self.note("removed earlier definitions of forward; the last one is kept")
        if forwards:
            return body
        # No forward: a single function taking taskInfo is the agent under another name.
        candidates = [
            i
            for i, s in enumerate(body)
            if isinstance(s, cst.FunctionDef)
            and any(p.name.value in ("taskInfo", "task_info") for p in _params(s))
        ]
        if len(candidates) == 1:
            i = candidates[0]
            fn = body[i]
            assert isinstance(fn, cst.FunctionDef)
            self.note(f"renamed function {fn.name.value} to forward")
            body[i] = fn.with_changes(name=cst.Name("forward"))
        return body

    # -- driver code and module-level statements
    def _drop_driver_code(self, body: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
        funcs = {s.name.value for s in body if isinstance(s, cst.FunctionDef)}
        classes = {s.name.value for s in body if isinstance(s, cst.ClassDef)}
        used: set[str] = set()
        for s in body:
            if isinstance(s, cst.FunctionDef | cst.ClassDef):
                used |= _names_in(s)
        driver_calls = (RUNTIME_NAMES - {"LLMAgentBase"}) | funcs | classes | {".forward", "print"}
        defs: list[cst.BaseStatement] = []
        hoist: list[tuple[cst.BaseSmallStatement, set[str]]] = []
        for s in body:
            if isinstance(s, cst.FunctionDef | cst.ClassDef):
                defs.append(s)
            elif _is_main_guard(s):
                self.note('removed the if __name__ == "__main__": block')
            elif isinstance(s, cst.SimpleStatementLine):
                for small in s.body:
                    bound = _bound_names(small)
                    if bound is None:  # star import: leave it at the top
                        defs.insert(0, cst.SimpleStatementLine(body=[small]))
                    elif bound and not (_called_names(small) & driver_calls) and bound & used:
                        hoist.append((small, bound))
                    elif isinstance(small, cst.Import | cst.ImportFrom):
                        self.note(f"removed the unused import `{_src(small)}`")
                    else:
                        self.note(f"removed top-level code outside functions: `{_src(small)}`")
            else:
                self.note(f"removed top-level code outside functions: `{_src(s)}`")
        if hoist:
            moved = set()
            out: list[cst.BaseStatement] = []
            for s in defs:
                if isinstance(s, cst.FunctionDef):
                    needed = _names_in(s)
                    picked: list[int] = []
                    for i in range(len(hoist) - 1, -1, -1):
                        small, bound = hoist[i]
                        if bound & needed:
                            picked.append(i)
                            needed |= _names_in(small)
                    if picked:
                        stmts = [
                            cst.SimpleStatementLine(body=[hoist[i][0]]) for i in sorted(picked)
                        ]
                        moved.update(n for i in picked for n in hoist[i][1])
                        s = _prepend(s, stmts)
                out.append(s)
            defs = out
            self.note(
                f"moved the top-level imports/variables {', '.join(sorted(moved))} into the "
                "functions that use them"
            )
        if defs and isinstance(defs[0], cst.FunctionDef | cst.ClassDef):
            defs[0] = defs[0].with_changes(leading_lines=[])
        return defs

    def _drop_unused_placeholders(self, body: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
        others = {id(s) for s in body}
        out = []
        for s in body:
            if (
                isinstance(s, cst.FunctionDef)
                and s.name.value != "forward"
                and _is_placeholder(s)
                and not any(
                    s.name.value in _names_in(o) for o in body if id(o) != id(s) and id(o) in others
                )
            ):
                self.note(f"removed the unused placeholder helper {s.name.value}")
                continue
            out.append(s)
        return out

    def _drop_unreachable_helpers(self, body: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
        """Helpers that forward never reaches are dead code; they also hide near-copies."""
        funcs = {s.name.value: s for s in body if isinstance(s, cst.FunctionDef)}
        if "forward" not in funcs:
            return body
        roots = {"forward"}
        for s in body:
            if not isinstance(s, cst.FunctionDef):
                roots |= _names_in(s) & set(funcs)
        reach, todo = set(roots), list(roots)
        while todo:
            for name in _names_in(funcs[todo.pop()]) & set(funcs):
                if name not in reach:
                    reach.add(name)
                    todo.append(name)
        out = []
        for s in body:
            if isinstance(s, cst.FunctionDef) and s.name.value not in reach:
                self.note(f"removed the helper {s.name.value}, which forward never uses")
                continue
            out.append(s)
        return out

    # -- signature
    def _fix_forward_signature(self, stmt: cst.BaseStatement) -> cst.BaseStatement:
        if not (isinstance(stmt, cst.FunctionDef) and stmt.name.value == "forward"):
            return stmt
        params = list(stmt.params.params)
        if stmt.params.posonly_params or stmt.params.star_arg != cst.MaybeSentinel.DEFAULT:
            return stmt
        required = [p for p in params if p.default is None]
        names = [p.name.value for p in required]
        if names == ["self", "taskInfo"]:
            return stmt
        if len(required) == 1 and names[0] != "self" and params[0] is required[0]:
            params.insert(0, cst.Param(cst.Name("self")))
            self.note("added the missing self parameter to forward")
            stmt = stmt.with_changes(params=stmt.params.with_changes(params=params))
            required = [p for p in params if p.default is None]
            names = [p.name.value for p in required]
        if (
            len(required) == 2
            and params[:2] == required
            and names[0] == "self"
            and names[1] != "taskInfo"
            and "taskInfo" not in _names_in(stmt.body)
        ):
            old = names[1]
            params[1] = params[1].with_changes(name=cst.Name("taskInfo"), annotation=None)
            body = stmt.body.visit(
                _Rewriter(owners=set(), attrs=set(), methods={}, rename={old: "taskInfo"})
            )
            self.note(f"renamed the parameter {old} of forward to taskInfo")
            stmt = stmt.with_changes(params=stmt.params.with_changes(params=params), body=body)
        return stmt

    def _add_missing_return(self, stmt: cst.BaseStatement) -> cst.BaseStatement:
        """``forward`` that never returns but binds ``answer``: return it (measured, g004-00)."""
        if not (isinstance(stmt, cst.FunctionDef) and stmt.name.value == "forward"):
            return stmt
        if _returns(stmt) or _is_placeholder(stmt) or not isinstance(stmt.body, cst.IndentedBlock):
            return stmt
        bound = _bound_anywhere(stmt.body)
        if "answer" not in bound:
            return stmt
        ret = cst.SimpleStatementLine([cst.Return(cst.Name("answer"))])
        self.note("forward never returned anything (every task would get None); added `return answer`")
        return stmt.with_changes(body=stmt.body.with_changes(body=[*stmt.body.body, ret]))

    # -- self.helper(...) for top-level helpers
    def _rewrite_self_calls(self, body: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
        helpers = {
            s.name.value: _first_param(s) == "self"
            for s in body
            if isinstance(s, cst.FunctionDef) and s.name.value != "forward"
        }
        if not helpers:
            return body
        rewriter = _Rewriter(owners={"self"}, attrs=set(), methods=helpers)
        out = []
        for s in body:
            if isinstance(s, cst.FunctionDef):
                new = s.visit(rewriter)
                if not new.deep_equals(s):
                    self.note(
                        "rewrote self.<helper>(...) calls into calls of the top-level helpers"
                    )
                s = new
            out.append(s)
        return out


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return ""


def _prepend(fn: cst.FunctionDef, stmts: Sequence[cst.BaseStatement]) -> cst.FunctionDef:
    if not isinstance(fn.body, cst.IndentedBlock):
        return fn
    body = list(fn.body.body)
    at = 0
    if (
        body
        and isinstance(body[0], cst.SimpleStatementLine)
        and isinstance(body[0].body[0], cst.Expr)
        and isinstance(body[0].body[0].value, cst.SimpleString | cst.ConcatenatedString)
    ):
        at = 1
    body[at:at] = list(stmts)
    return fn.with_changes(body=fn.body.with_changes(body=body))


# ----------------------------------------------------------------- findings


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
                       if a.keyword is not None and a.keyword.value not in AGENT_PARAMS]
            positional = [a for a in n.args if a.keyword is None and not a.star]
            if unknown or len(positional) > len(AGENT_PARAMS):
                start = pos[n].start
                what = (f"`{unknown[0]}=` is not one of its parameters" if unknown
                        else f"it was given {len(positional)} positional arguments")
                findings.append(NormalizeFinding(
                    "agent-arguments", start.line, start.column + 1,
                    f"LLMAgentBase takes ({', '.join(AGENT_PARAMS)}): {what}. The inputs "
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
