"""Exact and near-duplicate checks against a real archive on disk."""

from __future__ import annotations

from metasearch.candidate.validate import fingerprint
from metasearch.search.adas.context import IDEAS, idea_for
from metasearch.search.novelty import ArchiveDuplicates
from metasearch.store.archive import Archive
from metasearch.store.records import CandidateRecord, SplitScore

CODE = (
    "def forward(self, taskInfo):\n"
    "    cot = LLMAgentBase(['thinking', 'answer'], 'CoT')\n"
    "    thinking, answer = cot([taskInfo], 'Think step by step.')\n"
    "    return answer\n"
)
REPROMPTED = CODE.replace("'CoT'", "'Careful'").replace("step by step", "slowly")
OTHER = CODE.replace("return answer", "return answer.content")


def add(arc: Archive, cid: str, code: str, status: str = "ok") -> None:
    val = SplitScore(mean=0.5, ci_low=0.0, ci_high=1.0, n=2) if status == "ok" else None
    arc.add(CandidateRecord(id=cid, name=cid.title(), generation=1, status=status, val=val,
                            fingerprint=fingerprint(code)), code=code)


def test_exact_near_and_new(tmp_path):
    with Archive.open(tmp_path) as arc:
        add(arc, "g001-00", CODE)
        exact = ArchiveDuplicates(arc)(CODE + "\n# a comment\n")
        assert exact.startswith("identical to an agent already in the archive (g001-00)")
        near = ArchiveDuplicates(arc)(REPROMPTED)
        assert near.startswith("the same design as g001-00")
        assert ArchiveDuplicates(arc, near=False)(REPROMPTED) == ""
        assert ArchiveDuplicates(arc)(OTHER) == ""


def test_an_invalid_record_is_no_precedent_for_near_duplicates(tmp_path):
    with Archive.open(tmp_path) as arc:
        add(arc, "g001-00", CODE, status="invalid")
        assert ArchiveDuplicates(arc)(REPROMPTED) == ""


def test_ideas_rotate_across_slots_and_generations():
    slots = [idea_for(g, i) for g in (1, 2) for i in (0, 1, 2)]
    assert len(set(slots)) == len(slots) and set(slots) <= set(IDEAS)
    assert idea_for(1, 0) == idea_for(1, 0)  # deterministic: resume and cache depend on it
