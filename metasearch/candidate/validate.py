"""Static checks of candidate agent code, before it costs anything.

``validate_code(code, policy)`` parses the code with libcst and returns a list
of :class:`Finding` records, each with a 1-based line and column, a message
and a hint written so the list can be handed straight back to the meta agent
(:func:`format_findings`). An empty list means the code passed.

This is a *filter*, not the security boundary: it rejects the obvious
escapes (``eval``, ``__subclasses__``, ``import os``, ``random._os``, frame
walking, monkeypatching the runtime) with precise feedback, so that almost no
hostile code ever reaches the sandbox. Python cannot be made safe by
inspecting its source; the sandbox (``metasearch.execution.sandbox``) is what contains
code that gets past these checks.

``fingerprint(code)`` hashes the code's syntax tree with comments,
docstrings, whitespace and formatting removed, so re-proposals of the same
agent are caught before they are evaluated again.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import json
import re
import types
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from metasearch.errors import DataError

# Harmless pure-computation stdlib modules. ``concurrent.futures`` is allowed
# because ADAS agents commonly run sub-agents in a ThreadPoolExecutor; threads
# are counted by the sandbox's process limit, and ``ProcessPoolExecutor`` is
# refused by name. ``threading`` itself is not needed for that and is left
# out (it offers settrace/setprofile hooks and raw thread control).
DEFAULT_ALLOWED_IMPORTS: frozenset[str] = frozenset({
    "bisect", "collections", "collections.abc", "concurrent.futures", "copy", "dataclasses", "datetime",
    "decimal", "enum", "fractions", "functools", "heapq", "itertools", "json", "math",
    "operator", "random", "re", "statistics", "string", "textwrap", "typing",
})

FORBIDDEN_NAMES: frozenset[str] = frozenset({
    "eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars",
    "breakpoint", "input", "exit", "quit", "setattr", "delattr", "help", "memoryview",
    "ProcessPoolExecutor",
})
# Attribute names that lead out of plain computation whatever object they are on:
# modules reachable from allowed ones, frame/code/traceback internals, class graph.
DANGEROUS_ATTRIBUTES: frozenset[str] = frozenset({
    "sys", "os", "posix", "nt", "subprocess", "builtins", "bltns", "inspect", "importlib",
    "ctypes", "socket", "shutil", "pathlib", "io", "signal", "gc", "marshal", "pickle",
    "types", "threading", "multiprocessing", "resource", "pty", "mmap", "runpy", "code",
    "system", "popen", "spawn", "fork", "execv", "execve", "kill",
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "f_globals",
    "f_locals", "f_builtins", "f_back", "f_code", "tb_frame", "tb_next", "co_code",
    "func_globals", "mro", "ProcessPoolExecutor",
})
# The names the runtime puts in the agent's namespace (``runtime.loader.NAMESPACE_NAMES``).
RUNTIME_NAMES: frozenset[str] = frozenset({"LLMAgentBase", "Info", "run_python", "tunable"})
_NAME_HINTS = {
    "input": "No one types input while an agent runs: pass text to agents in their list of "
             "Info, e.g. agent([taskInfo, Info('note', 'User', text, -1)], 'instruction').",
    "open": "Agents cannot read or write files; keep data in variables.",
}
_ATTR_FUNCS = frozenset({"getattr", "hasattr", "attrgetter", "methodcaller"})
_DUNDER = re.compile(r"^__\w+__$")
_FORMAT_DUNDER = re.compile(r"\{[^{}]*__\w+")
_MAX_FINDINGS = 50
_MAX_REPEAT = 1_000_000


@dataclass(frozen=True)
class ValidationPolicy:
    """What candidate code may contain.

    ``allowed_imports`` holds dotted module names; ``from M import x`` is
    allowed when ``M`` or ``M.x`` is listed. ``allow_helpers`` lets top-level
    functions other than ``forward`` through (the loader binds them as
    helpers). ``max_depth`` counts nested blocks inside a function.
    """

    allowed_imports: frozenset[str] = DEFAULT_ALLOWED_IMPORTS
    max_lines: int = 400
    max_chars: int = 40_000
    max_depth: int = 10
    allow_helpers: bool = True


@dataclass(frozen=True)
class Finding:
    """One problem in the code, phrased for the author (human or meta agent).

    ``line`` and ``column`` are 1-based; ``line`` 0 means the whole file.
    """

    code: str
    line: int
    column: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}" if self.line else "whole file"
        text = f"{where}: [{self.code}] {self.message}"
        return f"{text} Fix: {self.hint}" if self.hint else text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def format_findings(findings: Iterable[Finding]) -> str:
    """One finding per line, ready to paste into a prompt."""
    items = list(findings)
    if not items:
        return "No problems found."
    head = f"The agent code was refused ({len(items)} problem{'s' * (len(items) != 1)}):"
    return "\n".join([head, *(f"- {f}" for f in items)])


def validate_code(code: str, policy: ValidationPolicy | None = None) -> list[Finding]:
    """Check ``code`` against ``policy``; an empty list means it may be run."""
    policy = policy or ValidationPolicy()
    if len(code) > policy.max_chars:
        return [Finding("too-large", 0, 0, f"The code is {len(code)} characters long; the "
                        f"limit is {policy.max_chars}.", "Write a shorter forward function.")]
    findings: list[Finding] = []
    n_lines = len(code.splitlines())
    if n_lines > policy.max_lines:
        findings.append(Finding("too-long", 0, 0, f"The code has {n_lines} lines; the limit is "
                                f"{policy.max_lines}.", "Write a shorter forward function."))
    syntax = _syntax_finding(code)
    if syntax is not None:
        return [*findings, syntax]
    module = cst.parse_module(code)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    checker = _Checker(policy, wrapper.resolve(PositionProvider))
    wrapper.visit(checker)
    seen: set[tuple[int, int]] = set()
    for f in sorted(checker.findings, key=lambda f: (f.line, f.column)):
        if f.line == 0 or (f.line, f.column) not in seen:
            seen.add((f.line, f.column))
            findings.append(f)
    return findings[:_MAX_FINDINGS]


def _syntax_finding(code: str) -> Finding | None:
    # ast first: it is fast and has hard limits on nesting, so parser bombs fail cleanly.
    try:
        ast.parse(code)
    except SyntaxError as e:
        return Finding("syntax", e.lineno or 0, e.offset or 0, f"Syntax error: {e.msg}.",
                       "Return the whole corrected source of `def forward(self, taskInfo):`.")
    except (ValueError, RecursionError, MemoryError) as e:
        return Finding("syntax", 0, 0, f"The code cannot be parsed: {type(e).__name__}.",
                       "Return plain, reasonably nested Python source.")
    try:
        cst.parse_module(code)
    except cst.ParserSyntaxError as e:
        return Finding("syntax", e.editor_line, e.editor_column, f"Syntax error: {e.message}.",
                       "Return the whole corrected source of `def forward(self, taskInfo):`.")
    except (RecursionError, MemoryError) as e:
        return Finding("syntax", 0, 0, f"The code cannot be parsed: {type(e).__name__}.",
                       "Return plain, reasonably nested Python source.")
    return None


@functools.lru_cache(maxsize=8)
def _module_escape_attrs(allowed: frozenset[str]) -> frozenset[str]:
    """Attribute names on allowed modules that lead to modules outside the allow-list."""
    names: set[str] = set()
    for name in allowed:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        for attr, value in vars(mod).items():
            if isinstance(value, types.ModuleType) and value.__name__ not in allowed:
                names.add(attr)
    return frozenset(names)


def _import_allowed(module: str, names: list[str], allowed: frozenset[str]) -> bool:
    if module in allowed:
        return True
    return bool(names) and all(f"{module}.{n}" in allowed for n in names)


def _dotted(node: cst.BaseExpression | None) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""


def _string_value(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.SimpleString):
        try:
            value = node.evaluated_value
        except Exception:
            return None
        return value if isinstance(value, str) else None
    if isinstance(node, cst.ConcatenatedString):
        left, right = _string_value(node.left), _string_value(node.right)
        return None if left is None or right is None else left + right
    return None


def _int_value(node: cst.BaseExpression) -> int | None:
    if isinstance(node, cst.Integer):
        return int(node.evaluated_value)
    if (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Power)
            and isinstance(node.left, cst.Integer) and isinstance(node.right, cst.Integer)):
        base, exp = int(node.left.evaluated_value), int(node.right.evaluated_value)
        return base ** exp if exp < 64 else None
    return None


class _ExitFinder(cst.CSTVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def visit_Break(self, node: cst.Break) -> None:
        self.found = True

    def visit_Return(self, node: cst.Return) -> None:
        self.found = True

    def visit_Raise(self, node: cst.Raise) -> None:
        self.found = True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # a return inside a nested function does not end the loop

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


def _has_exit(body: cst.BaseSuite) -> bool:
    finder = _ExitFinder()
    body.visit(finder)
    return finder.found


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, cst.SimpleString | cst.ConcatenatedString))


@dataclass
class _Checker(cst.CSTVisitor):
    policy: ValidationPolicy
    positions: Any
    findings: list[Finding] = field(default_factory=list)
    depth: int = 0
    module_aliases: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        super().__init__()
        self.escape_attrs = _module_escape_attrs(self.policy.allowed_imports)
        self.forbidden_attrs = DANGEROUS_ATTRIBUTES | self.escape_attrs
        self._deep_reported = False

    # -- helpers ---------------------------------------------------------
    def add(self, node: cst.CSTNode, code: str, message: str, hint: str = "") -> None:
        pos = self.positions[node].start
        self.findings.append(Finding(code, pos.line, pos.column + 1, message, hint))

    # -- module structure -------------------------------------------------
    def visit_Module(self, node: cst.Module) -> None:
        forwards: list[cst.FunctionDef] = []
        for i, stmt in enumerate(node.body):
            if i == 0 and _is_docstring(stmt):
                continue
            if isinstance(stmt, cst.FunctionDef):
                if stmt.decorators:
                    self.add(stmt.decorators[0], "decorator",
                             f"Top-level function `{stmt.name.value}` has a decorator.",
                             "Remove the decorator.")
                if stmt.name.value == "forward":
                    forwards.append(stmt)
                elif not self.policy.allow_helpers:
                    self.add(stmt, "helper-not-allowed",
                             f"Top-level function `{stmt.name.value}` is not allowed; only "
                             "`forward` may be defined.",
                             "Define helpers inside forward, or inline them.")
                continue
            if isinstance(stmt, cst.ClassDef):
                self.add(stmt, "class-not-allowed",
                         f"Top-level class `{stmt.name.value}` is not allowed.",
                         "Define only `def forward(self, taskInfo):` (plus helper functions); "
                         "use LLMAgentBase and Info as they are, without redefining them.")
                continue
            if isinstance(stmt, cst.SimpleStatementLine) and all(
                    isinstance(s, cst.Import | cst.ImportFrom) for s in stmt.body):
                continue
            self.add(stmt, "top-level-statement",
                     "Only imports and function definitions may appear at the top level.",
                     "Move this statement inside forward.")
        if not forwards:
            self.findings.append(Finding(
                "no-forward", 0, 0, "The code defines no top-level `def forward(self, taskInfo):`.",
                "Define it at the top level (not inside a class) and return the final answer."))
        for extra in forwards[1:]:
            self.add(extra, "multiple-forward", "`forward` is defined more than once.",
                     "Keep exactly one definition of forward.")
        if forwards:
            self._check_signature(forwards[0])

    def _check_signature(self, fn: cst.FunctionDef) -> None:
        p = fn.params
        names = [x.name.value for x in p.params]
        if fn.asynchronous is not None:
            self.add(fn, "bad-signature", "`forward` must not be async.",
                     "Use `def forward(self, taskInfo):`.")
        if (len(names) != 2 or any(x.default is not None for x in p.params) or p.posonly_params
                or p.kwonly_params or not isinstance(p.star_arg, cst.MaybeSentinel)
                or p.star_kwarg is not None):
            self.add(fn, "bad-signature",
                     "`forward` must have exactly the parameters (self, taskInfo).",
                     "Use `def forward(self, taskInfo):`.")

    # -- nesting ------------------------------------------------------------
    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self.depth += 1
        if self.depth > self.policy.max_depth and not self._deep_reported:
            self._deep_reported = True
            self.add(node, "too-deep", f"Blocks are nested more than {self.policy.max_depth} "
                     "levels deep.", "Flatten the code: use helper functions or early returns.")

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock) -> None:
        self.depth -= 1

    # -- imports ------------------------------------------------------------
    def _allowed_hint(self) -> str:
        return ("Use only these modules: " + ", ".join(sorted(self.policy.allowed_imports))
                + "; the agent reaches the model only through LLMAgentBase.")

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            name = _dotted(alias.name)
            if not _import_allowed(name, [], self.policy.allowed_imports):
                self.add(alias, "import-not-allowed", f"Importing `{name}` is not allowed.",
                         self._allowed_hint())
            elif alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.module_aliases.add(alias.asname.name.value)
            else:
                self.module_aliases.add(name.split(".")[0])

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative:
            self.add(node, "relative-import", "Relative imports are not allowed.",
                     self._allowed_hint())
            return
        module = _dotted(node.module)
        if isinstance(node.names, cst.ImportStar):
            self.add(node, "star-import", f"`from {module} import *` is not allowed.",
                     f"Import the names you use explicitly, e.g. `from {module} import name`.")
            return
        names = [_dotted(a.name) for a in node.names]
        if not _import_allowed(module, names, self.policy.allowed_imports):
            self.add(node, "import-not-allowed", f"Importing from `{module}` is not allowed.",
                     self._allowed_hint())
        for a in node.names:
            n = _dotted(a.name)
            if n.startswith("_") or n in self.forbidden_attrs or n in FORBIDDEN_NAMES:
                self.add(a, "forbidden-name", f"Importing `{n}` from `{module}` is not allowed.",
                         "Import only public functions and classes you need.")

    # -- names and attributes ------------------------------------------------
    def visit_Arg(self, node: cst.Arg) -> bool:
        # A keyword's name (`f(input=x)`) is not a use of the builtin it spells.
        node.value.visit(self)
        return False

    def visit_Name(self, node: cst.Name) -> None:
        name = node.value
        if name in FORBIDDEN_NAMES:
            self.add(node, "forbidden-name", f"`{name}` is not allowed in agent code.",
                     _NAME_HINTS.get(name, "Compute with plain Python and call the model "
                                           "through LLMAgentBase."))
        elif _DUNDER.match(name):
            self.add(node, "dunder-name", f"The special name `{name}` is not allowed.",
                     "Do not touch interpreter internals.")

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        attr = node.attr.value
        base = _dotted(node.value).split(".")[0]
        if _DUNDER.match(attr):
            self.add(node.attr, "dunder-attribute",
                     f"Access to the special attribute `.{attr}` is not allowed.",
                     "Do not touch interpreter internals.")
        elif attr in self.forbidden_attrs or attr in FORBIDDEN_NAMES:
            self.add(node.attr, "forbidden-attribute", f"Access to `.{attr}` is not allowed.",
                     "Use only the public functions of the allowed modules.")
        elif attr.startswith("_") and base in self.module_aliases:
            self.add(node.attr, "private-attribute",
                     f"Access to the private module attribute `{_dotted(node)}` is not allowed.",
                     "Use only the public functions of the allowed modules.")
        # Visit only the value: node.attr is a plain Name and was checked here.
        node.value.visit(self)
        return False

    def visit_Global(self, node: cst.Global) -> None:
        self.add(node, "global-statement", "`global` statements are not allowed.",
                 "Keep state in local variables and pass it to helpers as arguments.")

    # -- assignments that monkeypatch the runtime or modules -------------------
    def _check_target(self, target: cst.BaseExpression) -> None:
        if isinstance(target, cst.Attribute):
            root = _dotted(target.value).split(".")[0]
            if root in RUNTIME_NAMES or root in self.module_aliases:
                self.add(target, "monkeypatch",
                         f"Assigning to `{_dotted(target)}` changes the runtime or a module.",
                         "Do not modify LLMAgentBase, Info, run_python or imported modules; "
                         "use your own variables.")
        elif isinstance(target, cst.Tuple | cst.List):
            for el in target.elements:
                self._check_target(el.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._check_target(t.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._check_target(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._check_target(node.target)

    def visit_Del(self, node: cst.Del) -> None:
        self._check_target(node.target)

    # -- loops that cannot end, and bombs written as literals ----------------------
    def visit_While(self, node: cst.While) -> None:
        test = node.test
        forever = (isinstance(test, cst.Name) and test.value == "True") or (
            isinstance(test, cst.Integer) and test.evaluated_value != 0)
        if forever and not _has_exit(node.body):
            self.add(node, "infinite-loop", "This `while True` loop has no break, return or "
                     "raise, so it never ends.", "Bound the loop, e.g. `for _ in range(5):`.")

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not isinstance(node.operator, cst.Multiply):
            return
        for seq, count in ((node.left, node.right), (node.right, node.left)):
            n = _int_value(count)
            if (isinstance(seq, cst.SimpleString | cst.List | cst.Tuple)
                    and n is not None and n > _MAX_REPEAT):
                self.add(node, "huge-literal", f"This builds a sequence of {n} items.",
                         "Keep data small; answers and prompts are short text.")
                return

    # -- strings and dynamic attribute access -------------------------------------
    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        value = _string_value(node)
        if value is None:
            return
        if _DUNDER.match(value):
            self.add(node, "dunder-string", f"The string {value!r} names an interpreter "
                     "internal.", "Do not touch interpreter internals.")
        elif _FORMAT_DUNDER.search(value):
            self.add(node, "dunder-string", "A format string reaches a special attribute.",
                     "Format only plain values.")

    def visit_Call(self, node: cst.Call) -> None:
        func = _dotted(node.func).split(".")[-1]
        if func not in _ATTR_FUNCS:
            return
        arg_index = 1 if func in ("getattr", "hasattr") else 0
        if len(node.args) <= arg_index:
            return
        arg = node.args[arg_index].value
        value = _string_value(arg)
        if value is None:
            self.add(arg, "dynamic-getattr",
                     f"`{func}` with a computed attribute name is not allowed.",
                     "Use a literal attribute name, or a dict for dynamic lookups.")
        elif value.startswith("_") or value in self.forbidden_attrs or value in FORBIDDEN_NAMES:
            self.add(arg, "forbidden-attribute", f"`{func}` of {value!r} is not allowed.",
                     "Use only public attributes.")


# -- fingerprint -------------------------------------------------------------------

class _StripDocstrings(ast.NodeTransformer):
    def _strip(self, node: Any) -> Any:
        self.generic_visit(node)
        body = node.body
        if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip


def fingerprint(code: str) -> str:
    """A hash that is equal for codes differing only in comments, docstrings and layout.

    Unparsable code falls back to a hash of its whitespace-normalised text
    (prefixed ``raw:``), so it still deduplicates exact re-proposals.
    """
    try:
        tree = _StripDocstrings().visit(ast.parse(code))
        canon = ast.dump(tree, annotate_fields=False, include_attributes=False)
        return hashlib.sha256(canon.encode()).hexdigest()[:32]
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        text = " ".join(code.split())
        return "raw:" + hashlib.sha256(text.encode()).hexdigest()[:28]


# -- files and archives -------------------------------------------------------------

def validate_path(path: str | Path, policy: ValidationPolicy | None = None) -> dict[str, Any]:
    """Validate a ``.py`` agent file or an ADAS archive JSON (a list of entries with ``code``).

    Returns a JSON-able report: ``{"path", "ok", "entries": [{"index", "name",
    "fingerprint", "duplicate_of", "ok", "findings": [...]}]}``. Raises
    :class:`DataError` when the file is missing or is not an agent file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"Cannot read agent file {p}: {e}. Pass a .py file holding "
                        "`def forward(self, taskInfo):` or an ADAS archive .json.") from None
    entries: list[tuple[str, str]] = []
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{p} is not valid JSON (line {e.lineno}): {e.msg}.") from None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list) or not all(
                isinstance(d, dict) and isinstance(d.get("code"), str) for d in data):
            raise DataError(f"{p} is not an ADAS archive: expected a JSON list of entries, "
                            "each with a string field `code`.")
        entries = [(str(d.get("name", f"entry {i}")), d["code"]) for i, d in enumerate(data)]
    else:
        entries = [(p.stem, text)]
    seen: dict[str, int] = {}
    report_entries = []
    for i, (name, code) in enumerate(entries):
        findings = validate_code(code, policy)
        fp = fingerprint(code)
        report_entries.append({
            "index": i, "name": name, "fingerprint": fp, "duplicate_of": seen.get(fp),
            "ok": not findings, "findings": [f.to_json() for f in findings],
        })
        seen.setdefault(fp, i)
    return {"path": str(p), "ok": all(e["ok"] for e in report_entries),
            "entries": report_entries}
