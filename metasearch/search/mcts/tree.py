"""The search tree of ``mcts`` and its two selection rules, as pure functions of the records.

Nodes are agents: a seed (or an imported agent) is a child of the virtual
root, and a candidate whose record names one parent is that parent's child.
A node's value is the mean reward of its subtree (backpropagation of the
mean): its own validation score, 0 for an edit that never ran or failed
every task, the minibatch score for a pruned one. Only ``ok`` nodes with
code can be expanded (edited).

- :func:`select_uct` descends from the root by UCT, ``Q + c * sqrt(ln N_parent / N)``,
  and expands the first node with fewer than ``max_children`` edits (or
  with no expandable child left).
- :func:`select_soft_mix` is AFlow's rule: among the ``top_k`` expandable
  nodes by their own score, sample from ``mix * uniform + (1 - mix) *
  softmax(alpha * 100 * (score - best))`` (alpha per percentage point).

Several slots of one generation select on the same tree; :meth:`Tree.visit`
adds a pending child (reward 0, a "virtual loss") to the chosen node, so UCT
spreads the generation instead of choosing one node ``width`` times.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from metasearch.store.records import CandidateRecord

__all__ = ["Node", "Tree", "nodes_of", "select_soft_mix", "select_uct", "soft_mix_probabilities",
           "top_k_mean"]


@dataclass(frozen=True)
class Node:
    id: str
    parent: str | None  # None: a child of the virtual root
    reward: float
    expandable: bool


@dataclass
class Tree:
    """Nodes in archive order, their children and subtree statistics (visits, reward sum)."""

    nodes: dict[str, Node]
    children: dict[str | None, list[str]] = field(default_factory=dict)
    visits: dict[str | None, int] = field(default_factory=dict)
    total: dict[str | None, float] = field(default_factory=dict)

    @classmethod
    def of(cls, nodes: Sequence[Node]) -> Tree:
        tree = cls({n.id: n for n in nodes})
        for n in nodes:
            tree.children.setdefault(n.parent, []).append(n.id)
            tree._backpropagate(n.id, n.reward)
        return tree

    def _path(self, nid: str | None) -> list[str | None]:
        out: list[str | None] = []
        while nid is not None:
            out.append(nid)
            nid = self.nodes[nid].parent
        return [*out, None]

    def _backpropagate(self, nid: str, reward: float) -> None:
        for a in self._path(nid):
            self.visits[a] = self.visits.get(a, 0) + 1
            self.total[a] = self.total.get(a, 0.0) + reward

    def visit(self, nid: str) -> None:
        """A pending edit of ``nid``: one more child, counted with reward 0 up to the root."""
        self.children.setdefault(nid, []).append(f"{nid}+pending{len(self.children[nid])}")
        for a in self._path(nid):
            self.visits[a] = self.visits.get(a, 0) + 1
            self.total[a] = self.total.get(a, 0.0)

    def q(self, nid: str | None) -> float:
        """The mean reward of the subtree of ``nid``."""
        return self.total.get(nid, 0.0) / max(1, self.visits.get(nid, 0))

    def n_children(self, nid: str | None) -> int:
        return len(self.children.get(nid, []))

    def live_children(self, nid: str | None) -> list[str]:
        return [c for c in self.children.get(nid, []) if c in self.nodes and self.nodes[c].expandable]

    def uct(self, nid: str, c: float) -> float:
        parent = self.nodes[nid].parent
        n = max(1, self.visits.get(nid, 0))
        return self.q(nid) + c * math.sqrt(math.log(max(1, self.visits.get(parent, 1))) / n)


def nodes_of(records: Sequence[CandidateRecord]) -> list[Node]:
    """The tree's nodes: every record, its one parent if it names one that came before."""
    seen: set[str] = set()
    out = []
    for r in records:
        parent = r.parent_ids[0] if len(r.parent_ids) == 1 and r.parent_ids[0] in seen else None
        scored = r.val is not None and r.status in ("ok", "pruned")
        out.append(Node(r.id, parent, float(r.val.mean) if scored and r.val else 0.0,
                        r.status == "ok" and bool(r.code_path)))
        seen.add(r.id)
    return out


def select_uct(tree: Tree, c: float, max_children: int) -> str | None:
    """Descend from the root by UCT to the node to expand; None when nothing can be expanded."""
    order = {nid: i for i, nid in enumerate(tree.nodes)}
    node: str | None = None
    while True:
        kids = tree.live_children(node)
        if node is not None and (tree.n_children(node) < max_children or not kids):
            return node
        if not kids:
            return None
        node = max(kids, key=lambda k: (tree.uct(k, c), -order[k]))


def soft_mix_probabilities(scores: Sequence[float], alpha: float, mix: float) -> list[float]:
    """AFlow's mix: ``mix / n + (1 - mix) * softmax(alpha * 100 * (score - max))``."""
    if not scores:
        return []
    best = max(scores)
    weights = [math.exp(alpha * 100.0 * (s - best)) for s in scores]
    total = sum(weights)
    return [mix / len(scores) + (1.0 - mix) * w / total for w in weights]


def select_soft_mix(tree: Tree, top_k: int, alpha: float, mix: float,
                    rng: random.Random) -> str | None:
    """Sample a node to expand among the ``top_k`` expandable ones by their own score."""
    order = {nid: i for i, nid in enumerate(tree.nodes)}
    pool = sorted((n for n in tree.nodes.values() if n.expandable),
                  key=lambda n: (-n.reward, order[n.id]))[:max(1, top_k)]
    if not pool:
        return None
    probs = soft_mix_probabilities([n.reward for n in pool], alpha, mix)
    x, acc = rng.random(), 0.0
    for n, p in zip(pool, probs, strict=True):
        acc += p
        if x < acc:
            return n.id
    return pool[-1].id


def top_k_mean(scores: Sequence[float], k: int) -> float:
    """The mean of the ``k`` best scores (0 for none): what ``patience`` watches."""
    best = sorted(scores, reverse=True)[:max(1, k)]
    return sum(best) / len(best) if best else 0.0
