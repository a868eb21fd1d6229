"""libcst pieces the renderer composes: literals, keyword arguments, filled templates.

A template is a few lines of ordinary Python in which UPPER_CASE names are
holes: ``Fill`` replaces a hole with an expression (a literal, a list, a
name) and ``**ROLE`` in a call's arguments with that role's keywords. Then
``FoldLists`` joins list literals added together (``[taskInfo] + [a, b]``
becomes ``[taskInfo, a, b]``), so the code reads as a person would write it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import libcst as cst

__all__ = ["FoldLists", "WrapLongCalls", "keyword", "literal", "names", "statements", "text_literal"]

_NO_SPACE = cst.SimpleWhitespace("")
_SPACE = cst.SimpleWhitespace(" ")


def _quote(text: str) -> str:
    """A double-quoted Python literal of ``text`` (the seeds' style)."""
    r = repr(text)
    if r.startswith("'") and '"' not in text:
        r = '"' + r[1:-1].replace("\\'", "'") + '"'
    return r


def literal(value: Any) -> cst.BaseExpression:
    """A plain Python value as an expression node."""
    if isinstance(value, bool) or value is None:
        return cst.Name(repr(value))
    if isinstance(value, int | float):
        node: cst.BaseExpression = (cst.Integer(str(abs(value))) if isinstance(value, int)
                                    else cst.Float(repr(abs(value))))
        return cst.UnaryOperation(cst.Minus(), node) if value < 0 else node
    if isinstance(value, str):
        return cst.SimpleString(_quote(value))
    if isinstance(value, list | tuple):
        items = [cst.Element(literal(v), comma=cst.Comma(whitespace_after=_SPACE))
                 for v in value]
        if items:
            items[-1] = items[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return cst.List(items) if isinstance(value, list) else cst.Tuple(items)
    raise TypeError(f"no literal for {type(value).__name__}")


def names(variables: Sequence[str]) -> cst.List:
    """``[a, b]`` of variable names."""
    items = [cst.Element(cst.Name(v), comma=cst.Comma(whitespace_after=_SPACE)) for v in variables]
    if items:
        items[-1] = items[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return cst.List(items)


def _line_break(indent: str) -> cst.ParenthesizedWhitespace:
    return cst.ParenthesizedWhitespace(first_line=cst.TrailingWhitespace(), empty_lines=[],
                                       indent=True, last_line=cst.SimpleWhitespace(indent))


def text_literal(text: str, width: int = 76) -> cst.BaseExpression:
    """A string literal; a long one becomes parenthesised pieces on lines of their own."""
    if len(text) <= width:
        return literal(text)
    pieces: list[str] = []
    for word in text.split(" "):  # each piece ends with its space, so the text is unchanged
        if pieces and len(pieces[-1]) + len(word) <= width:
            pieces[-1] += word + " "
        else:
            pieces.append(word + " ")
    pieces[-1] = pieces[-1][:-1]
    node: cst.BaseExpression = literal(pieces[-1])
    for piece in reversed(pieces[:-1]):
        node = cst.ConcatenatedString(left=literal(piece),  # type: ignore[arg-type]
                                      right=node,  # type: ignore[arg-type]
                                      whitespace_between=_line_break("    "))
    return node.with_changes(lpar=[cst.LeftParen(whitespace_after=_line_break("    "))],
                             rpar=[cst.RightParen(whitespace_before=_line_break(""))])


def keyword(name: str, value: Any) -> cst.Arg:
    """``name=value`` with no spaces around ``=``, as in a call."""
    expr = value if isinstance(value, cst.BaseExpression) else literal(value)
    return cst.Arg(value=expr, keyword=cst.Name(name),
                   equal=cst.AssignEqual(whitespace_before=_NO_SPACE, whitespace_after=_NO_SPACE))


class _Fill(cst.CSTTransformer):
    def __init__(self, holes: Mapping[str, cst.BaseExpression],
                 roles: Mapping[str, Sequence[cst.Arg]]) -> None:
        super().__init__()
        self.holes, self.roles = holes, roles

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        return self.holes.get(updated.value, updated)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        args: list[cst.Arg] = []
        changed = False
        for arg in updated.args:
            if arg.star == "**" and isinstance(arg.value, cst.Name) and arg.value.value in self.roles:
                args.extend(self.roles[arg.value.value])
                changed = True
            else:
                args.append(arg)
        if not changed:
            return updated
        args = [a.with_changes(comma=cst.Comma(whitespace_after=_SPACE)) for a in args]
        if args:
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return updated.with_changes(args=args)


class FoldLists(cst.CSTTransformer):
    """``[a] + [b, c]`` -> ``[a, b, c]``: what templates that add inputs leave behind."""

    def leave_BinaryOperation(self, original: cst.BinaryOperation,
                              updated: cst.BinaryOperation) -> cst.BaseExpression:
        left, right = updated.left, updated.right
        if not (isinstance(updated.operator, cst.Add) and isinstance(left, cst.List)
                and isinstance(right, cst.List)):
            return updated
        items = [e.with_changes(comma=cst.Comma(whitespace_after=_SPACE))
                 for e in [*left.elements, *right.elements]]
        if items:
            items[-1] = items[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return cst.List(items, lpar=updated.lpar, rpar=updated.rpar)


def statements(template: str, holes: Mapping[str, cst.BaseExpression] | None = None,
               roles: Mapping[str, Sequence[cst.Arg]] | None = None,
               *, blank_line: bool = True) -> list[cst.BaseStatement]:
    """The statements of ``template`` with its holes filled (a blank line before them)."""
    module = cst.parse_module(textwrap.dedent(template).strip() + "\n")
    filled = module.visit(_Fill(holes or {}, roles or {})).visit(FoldLists())
    body = list(filled.body)
    if body and blank_line:
        body[0] = body[0].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
    return body


class WrapLongCalls(cst.CSTTransformer):
    """Break a statement's call over lines when its line is longer than ``width`` (black's way).

    First all arguments on one line of their own; if that is still too long, one
    argument per line with a trailing comma.
    """

    def __init__(self, width: int = 99) -> None:
        super().__init__()
        self.width, self.depth = width, 0
        self._module = cst.Module(body=[])

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self.depth += 1

    def leave_IndentedBlock(self, original: cst.IndentedBlock,
                            updated: cst.IndentedBlock) -> cst.IndentedBlock:
        self.depth -= 1
        return updated

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine,
                                  updated: cst.SimpleStatementLine) -> cst.SimpleStatementLine:
        indent = 4 * self.depth
        if self._longest(updated, indent) <= self.width:
            return updated
        stmt = updated.body[0]
        value = getattr(stmt, "value", None)
        if isinstance(value, cst.Call) and value.args:
            value = self._wrap(value, indent)
        elif isinstance(value, cst.List) and value.elements:
            items = [e.with_changes(comma=cst.Comma(whitespace_after=_line_break("    ")))
                     for e in value.elements]
            items[-1] = items[-1].with_changes(comma=cst.Comma(whitespace_after=_line_break("")))
            value = value.with_changes(
                lbracket=cst.LeftSquareBracket(whitespace_after=_line_break("    ")),
                elements=items)
        elif isinstance(value, cst.ListComp) and isinstance(value.elt, cst.Call):
            value = value.with_changes(elt=self._wrap(value.elt, indent, extra=4))
        else:
            return updated
        return updated.with_changes(body=[stmt.with_changes(value=value)])

    def _longest(self, node: cst.CSTNode, indent: int) -> int:
        return max(indent + len(line) for line in self._module.code_for_node(node).splitlines())

    def _wrap(self, call: cst.Call, indent: int, extra: int = 0) -> cst.Call:
        """``extra``: how far the call sits right of its statement (inside brackets)."""
        inner = ", ".join(self._module.code_for_node(a.with_changes(comma=cst.MaybeSentinel.DEFAULT))
                          for a in call.args)
        args = list(call.args)
        step, close = " " * (extra + 4), " " * extra
        if indent + extra + 4 + len(inner) <= self.width:
            args = [a.with_changes(comma=cst.Comma(whitespace_after=_SPACE)) for a in args]
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT,
                                             whitespace_after_arg=_line_break(close))
        else:
            args = [a.with_changes(comma=cst.Comma(whitespace_after=_line_break(step)))
                    for a in args]
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=_line_break(close)))
        return call.with_changes(whitespace_before_args=_line_break(step), args=args)
