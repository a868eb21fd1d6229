"""The log of billed calls: what a ``kill -9`` between two checkpoints would lose.

The end-to-end case (a campaign SIGKILLed mid-candidate and resumed counts every call the
model was sent) is in ``tests/test_campaign_resume.py``; the CLI's wiring in
``tests/test_campaign_faults_cli.py``.
"""

from __future__ import annotations

import threading

from metasearch.campaign.summary import prior_spend
from metasearch.llm.billed_log import BILLED_FILE, BilledLog, logged_spend
from metasearch.store.archive import Archive
from metasearch.store.records import CampaignState


def test_the_log_sums_its_lines_from_many_threads_and_skips_a_torn_last_line(tmp_path):
    assert logged_spend(tmp_path) is None  # no log: nothing claimed
    log = BilledLog(tmp_path / BILLED_FILE)
    threads = [threading.Thread(target=lambda: [log.append(usd=0.5, tokens=3)
                                                for _ in range(50)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    with (tmp_path / BILLED_FILE).open("a") as f:
        f.write('{"usd": 0.5, "tok')  # a kill mid-write
    assert logged_spend(tmp_path) == {"calls": 200, "usd": 100.0, "tokens": 600}


def test_a_resume_counts_the_log_where_the_last_checkpoint_is_older(tmp_path):
    with Archive.open(tmp_path) as archive:
        archive.checkpoint(CampaignState(generation=0, step="a",
                                         meta={"spent": {"calls": 2, "usd": 0.0, "tokens": 9}}))
        log = BilledLog(tmp_path / BILLED_FILE)
        for _ in range(5):  # three more billed after the checkpoint, then kill -9
            log.append(usd=0.0, tokens=4)
        log.close()
        assert prior_spend(archive) == {"usd": 0.0, "calls": 5, "tokens": 20}
        archive.checkpoint(CampaignState(generation=0, step="b",  # a clean stop: both agree
                                         meta={"spent": {"calls": 5, "usd": 0.0, "tokens": 20}}))
        assert prior_spend(archive)["calls"] == 5
