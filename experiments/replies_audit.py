"""How many search calls a campaign has billed, counted from its committed replies files.

    python experiments/replies_audit.py CAMPAIGN_DIR [--base BASE_DIR ...]

Every billed call that succeeded left one new reply in the campaign's cache,
and ``structured-local.sh save`` writes each new reply into exactly one file
of ``structured-local.replies/<campaign>/``. So the replies of those files
that are not in the base campaign's (the seeds' cache each search campaign
started from) are the calls it bought: a count that survives stops and lost
machines, which the archive's checkpoint did not before 2026-12-02
(``tests/test_stop_keeps_spend.py``). Failed calls leave no reply and are not
counted; the archive's fault counts say how many there were.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metasearch.llm.replies import known_keys, replies_files  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("campaign", type=Path)
    ap.add_argument("--base", type=Path, action="append", default=[])
    args = ap.parse_args()
    base = known_keys(replies_files(args.base)) if args.base else set()
    seen: set[str] = set()
    for f in replies_files([args.campaign]):
        new = known_keys([f]) - base - seen
        seen |= new
        print(f"{f.name}\t{len(new)}\t{len(seen)}")
    print(f"total\t{len(seen)}")


if __name__ == "__main__":
    main()
