"""The hand-written seed agents in ``archive/``.

A seed file is a module docstring followed by one top-level ``def forward``.
Convention: the docstring's first line is the agent's **name**; the rest of
the docstring is its **thought** (Insights / Overall Idea / Implementation);
the source of ``forward`` is its **code**, exactly as it would be stored in an
ADAS archive.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from metasearch.errors import AgentCodeError


@dataclass(frozen=True)
class SeedAgent:
    name: str
    thought: str
    code: str
    path: str = ""


def load_seed(path: str | Path) -> SeedAgent:
    """Read one seed file; raises :class:`AgentCodeError` if it breaks the convention."""
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise AgentCodeError(f"Seed agent {path} has a syntax error at line {e.lineno}: {e.msg}.") from None
    doc = ast.get_docstring(tree, clean=True)
    if not doc or not doc.strip():
        raise AgentCodeError(
            f"Seed agent {path} has no module docstring; its first line must be the agent's "
            "name and the rest its thought."
        )
    name, _, thought = doc.strip().partition("\n")
    forwards = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "forward"]
    if len(forwards) != 1:
        raise AgentCodeError(f"Seed agent {path} must define exactly one top-level `def forward`.")
    fn = forwards[0]
    start = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
    lines = source.splitlines()
    code = "\n".join(lines[start - 1 : fn.end_lineno]) + "\n"
    return SeedAgent(name=name.strip(), thought=thought.strip(), code=code, path=str(path))


# ADAS's initial-archive order; other seed files follow, sorted by name.
SEED_ORDER = (
    "chain_of_thought", "self_consistency", "self_refine", "llm_debate",
    "step_back_abstraction", "quality_diversity", "role_assignment",
)


def list_seeds(archive_dir: str | Path) -> list[SeedAgent]:
    """Every ``*.py`` seed in ``archive_dir``: ADAS's seven in ADAS order, then the rest by name."""
    paths = [p for p in Path(archive_dir).glob("*.py") if not p.name.startswith("_")]
    rank = {stem: i for i, stem in enumerate(SEED_ORDER)}
    paths.sort(key=lambda p: (rank.get(p.stem, len(rank)), p.name))
    return [load_seed(p) for p in paths]
