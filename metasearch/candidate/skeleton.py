"""An agent's design skeleton: its code with prompts, constants and local names abstracted.

Small meta agents often resubmit an archived agent with new prompts, a new
temperature or renamed variables. Such a copy spends a whole evaluation to
learn nothing about designs, and counting it as "new" flatters the yield.
Two agents have the same skeleton when they differ only in

- string and number literals (instructions, agent names, round counts);
- literal arguments of calls (``temperature=0.7``, ``role=...``), whether
  given, left out or changed, and the iteration index passed to an agent
  (``agent(inputs, instruction, i)``: it only labels the outputs);
- locals bound once to a literal and used by name (``instruction = "..."``);
- the names of local variables and helper functions;
- comments and formatting.

Measured: the 1.5B meta agent's "Verify and Retry" (arith-local, g001-01)
was the Self-Refine seed with its instructions inlined, a temperature added
and the critic renamed; literal blanking alone called it new.
"""

from __future__ import annotations

import ast
import builtins
import hashlib

#: Names that keep their identity: the runtime, the agent's parameters, builtins.
_KEPT = frozenset(
    {"Info", "LLMAgentBase", "run_python", "tunable", "AgentSystem", "forward", "self", "taskInfo",
     *dir(builtins)}
)


def structure_fingerprint(code: str) -> str:
    """A short hash equal for two agents with the same skeleton (see the module docstring).

    Code that does not parse fingerprints as its own text.
    """
    try:
        tree = ast.parse(code)
        tree = _inline_literal_names(tree)
        tree = _Blank(_agent_names(tree)).visit(tree)
        tree = _Rename().visit(tree)
        text = ast.dump(tree, annotate_fields=False)
    except (SyntaxError, ValueError, RecursionError):
        text = code
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_literal(node: ast.AST) -> bool:
    """A constant, or an expression built only from constants (``"a" + "b"``, ``-1``, ``(1, 2)``)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.BinOp):
        return _is_literal(node.left) and _is_literal(node.right)
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    if isinstance(node, ast.Tuple | ast.List):
        return all(_is_literal(e) for e in node.elts)
    return False


def _inline_literal_names(tree: ast.Module) -> ast.Module:
    """Replace names bound exactly once, to a literal, by the literal; drop the binding."""
    stores: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            stores[node.id] = stores.get(node.id, 0) + 1
        elif isinstance(node, ast.arg):
            stores[node.arg] = stores.get(node.arg, 0) + 2  # parameters are never inlined
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stores[node.name] = stores.get(node.name, 0) + 2
    literals = {
        node.targets[0].id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and stores.get(node.targets[0].id) == 1
        and _is_literal(node.value)
    }
    if not literals:
        return tree

    class _Inline(ast.NodeTransformer):
        def visit_Assign(self, node: ast.Assign) -> ast.AST | None:
            target = node.targets[0] if len(node.targets) == 1 else None
            if isinstance(target, ast.Name) and target.id in literals:
                return None
            return self.generic_visit(node)

        def visit_Name(self, node: ast.Name) -> ast.AST:
            if isinstance(node.ctx, ast.Load) and node.id in literals:
                return ast.copy_location(ast.Constant("literal"), node)
            return node

    return _Inline().visit(tree)  # an emptied body is fine: the tree is only dumped


def _agent_names(tree: ast.Module) -> frozenset[str]:
    """Names bound to ``LLMAgentBase(...)``."""
    return frozenset(
        t.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "LLMAgentBase"
        for t in node.targets
        if isinstance(t, ast.Name)
    )


class _Blank(ast.NodeTransformer):
    """Blank literals; drop literal arguments of calls, agents' iteration index, docstrings."""

    def __init__(self, agents: frozenset[str] = frozenset()) -> None:
        self.agents = agents

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id in self.agents:
            node.args = node.args[:2]
            node.keywords = [k for k in node.keywords if k.arg != "iteration_idx"]
        node.args = [a for a in node.args if not _is_literal(a)]
        node.keywords = [k for k in node.keywords if k.arg is None or not _is_literal(k.value)]
        return self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        if _is_literal(node.value):  # docstrings and stray strings
            return None
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.copy_location(ast.Constant(type(node.value).__name__), node)


class _Rename(ast.NodeTransformer):
    """Name locals and helpers by order of first appearance (``v0``, ``v1``, ...)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _canon(self, name: str) -> str:
        if name in _KEPT:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._canon(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._canon(node.arg)
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self._canon(node.name)
        node.returns = None
        return self.generic_visit(node)
