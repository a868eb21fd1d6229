"""Is a proposal new? Exact and near-duplicate checks against the archive.

Exact: the normalised-code fingerprint (``validate.fingerprint``) of any
archived candidate. Near: the same design skeleton
(:func:`metasearch.candidate.skeleton.structure_fingerprint`: code up to prompts,
constants, literal arguments and local names) as a seed or an evaluated
candidate; small meta agents often resubmit an archive agent with a new name
or prompt, which spends a whole evaluation to learn nothing about designs.
"""

from __future__ import annotations

from typing import Any

from metasearch.candidate.skeleton import structure_fingerprint
from metasearch.candidate.validate import fingerprint


class ArchiveDuplicates:
    """``is_duplicate`` for the proposer: why the code repeats the archive, or "".

    ``archive`` is an :class:`~metasearch.store.archive.Archive` or a slot's
    :class:`~metasearch.search.base.ArchiveView`; ``structures`` may be shared
    between instances (record id -> skeleton; a record's code never changes).
    """

    def __init__(self, archive: Any, *, near: bool = True,
                 structures: dict[str, str] | None = None) -> None:
        self.archive = archive
        self.near = near
        self._structures = {} if structures is None else structures

    def __call__(self, code: str) -> str:
        same = self.archive.by_fingerprint(fingerprint(code))
        if same:
            return f"identical to an agent already in the archive ({same[0].id})"
        if not self.near:
            return ""
        target = structure_fingerprint(code)
        for rec in self.archive.records():
            if rec.status == "invalid" or not rec.code_path:
                continue  # never run: repeating its structure is not a known design
            if rec.id not in self._structures:
                self._structures[rec.id] = structure_fingerprint(self.archive.read_agent(rec.id))
            if self._structures[rec.id] == target:
                return (f"the same design as {rec.id} ({rec.name}): only prompts, constants, "
                        "settings such as temperature, or variable names differ")
        return ""
