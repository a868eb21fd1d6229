"""The passes that take ``forward`` out of a class and drop runtime-shadowing definitions."""

from __future__ import annotations

import libcst as cst

from metasearch.candidate.normalize._cst import (
    RUNTIME_NAMES,
    _assigned_names,
    _decorators,
    _dotted,
    _first_param,
    _is_placeholder,
    _names_in,
    _prepend,
)
from metasearch.candidate.normalize.transforms import _Rewriter


class _ClassLifter:
    """Base of :class:`~.rewrites._Normalizer`: its class-lifting and shadowing passes.

    Split off only to keep modules short; subclasses set ``self.changes``, the
    list every change is described in.
    """

    changes: list[str]

    def note(self, text: str) -> None:
        if text not in self.changes:
            self.changes.append(text)

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
