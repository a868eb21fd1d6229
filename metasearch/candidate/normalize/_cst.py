"""Small libcst helpers shared by the rewrites and the problem finder."""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

# The runtime's names (``runtime.loader.NAMESPACE_NAMES``) and ADAS's ``AgentSystem``.
RUNTIME_NAMES = frozenset({"Info", "LLMAgentBase", "run_python", "tunable", "AgentSystem"})


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
