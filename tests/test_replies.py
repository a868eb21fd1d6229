"""``metasearch cache export / import``: a campaign's replies as files, and replaying them.

The point of the files is that a campaign whose machine is gone can be run again
from them without one model call, and reproduce its records; that is tested on a
scripted campaign here and with the real local model through ``metasearch eval``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from postgres_kit import fresh_campaign, postgres_url
from test_campaign_kit import Script, agent, close, make_campaign, sections
from test_cli import assert_clean_error, metasearch

from metasearch.errors import DataError
from metasearch.llm.cache import ResponseCache
from metasearch.llm.replies import (
    export_replies,
    import_replies,
    known_keys,
    open_cache,
    open_owed,
)

REPLY = {"text": "## answer\n4", "prompt_tokens": 12, "completion_tokens": 3,
         "finish_reason": "stop", "meta": {}}


def key(n: int) -> str:
    return f"{n:064x}"


def filled(path: Path, n: int, start: int = 0) -> ResponseCache:
    cache = ResponseCache(directory=path)
    for i in range(start, start + n):
        cache.set(key(i), REPLY | {"text": f"## answer\n{i}"})
    return cache


def write_lines(path: Path, *lines: object) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def test_export_then_import_gives_the_same_replies_and_later_exports_hold_only_new_ones(
        tmp_path):
    source = filled(tmp_path / "a", 5)
    first = tmp_path / "shards" / "1.jsonl.gz"
    first.parent.mkdir()
    assert export_replies(source, first) == 5
    for i in range(5, 8):
        source.set(key(i), REPLY)
    second = tmp_path / "shards" / "2.jsonl.gz"
    assert export_replies(source, second, skip=known_keys([first.parent])) == 3
    assert known_keys([second]) == {key(i) for i in range(5, 8)}

    target = ResponseCache(directory=tmp_path / "b")
    count = import_replies(target, [first.parent])  # a directory: its files in name order
    assert (count.added, count.present, count.differing) == (8, 0, 0)
    assert dict(target.items()) == dict(source.items())
    again = import_replies(target, [first, second])
    assert (again.added, again.present) == (0, 8)


def test_an_import_keeps_the_caches_own_reply_where_the_file_differs(tmp_path):
    ours = filled(tmp_path / "ours", 2)
    theirs = filled(tmp_path / "theirs", 3)
    theirs.set(key(0), REPLY | {"text": "## answer\nsomething else"})
    f = tmp_path / "theirs.jsonl.gz"
    export_replies(theirs, f)
    count = import_replies(ours, [f])
    assert (count.added, count.present, count.differing) == (1, 1, 1)
    assert ours.get(key(0))["text"] == "## answer\n0"


@pytest.mark.parametrize(("lines", "needle"), [
    (['{"format": "other", "version": 1}'], "line 1: not a metasearch replies file"),
    ([{"format": "metasearch-replies", "version": 2}], "format version 2"),
    ([{"format": "metasearch-replies", "version": 1}, "{not json"], "line 2 is not JSON"),
    ([{"format": "metasearch-replies", "version": 1}, {"key": "abc", "reply": REPLY}],
     "line 2: 'key' should be a request's sha256"),
    ([{"format": "metasearch-replies", "version": 1}, {"key": key(1), "reply": "4"}],
     "line 2: 'reply' should be an object"),
    ([{"format": "metasearch-replies", "version": 1}, {"key": key(1), "reply": REPLY},
      {"key": key(2), "reply": REPLY | {"prompt_tokens": "12"}}],
     "line 3: the reply's 'prompt_tokens' should be an integer"),
])
def test_a_damaged_file_is_refused_naming_the_line_and_nothing_is_imported(
        tmp_path, lines, needle):
    f = write_lines(tmp_path / "bad.jsonl.gz", *lines)
    target = ResponseCache(directory=tmp_path / "c")
    with pytest.raises(DataError, match=needle):
        import_replies(target, [f])
    assert len(target) == 0  # checked whole before anything is added


def test_a_file_that_is_not_gzip_and_a_missing_file_are_refused(tmp_path):
    plain = tmp_path / "plain.jsonl.gz"
    plain.write_text('{"format": "metasearch-replies", "version": 1}\n')
    with pytest.raises(DataError, match="is not a gzip'd replies file"):
        known_keys([plain])
    with pytest.raises(DataError, match="does not exist"):
        known_keys([tmp_path / "nope.jsonl.gz"])


def test_a_campaign_replays_from_imported_replies_without_calling_a_model(tmp_path):
    """The purpose: the machine is gone, the replies file is not; the rerun is exact."""
    script = Script({"g001-00": {"propose": sections(agent("HALF", calls=2), "Twice")}},
                    seed_mode="HALF")
    first = make_campaign(tmp_path / "a", script, generations=1, disk_cache=True)
    try:
        result = first.run()
    finally:
        close(first)
    f = tmp_path / "replies.jsonl.gz"
    n = export_replies(open_cache(tmp_path / "a"), f)
    assert n == len(script.requests) > 0  # every billed call (no repeats in this script)

    import_replies(open_cache(tmp_path / "b", create=True), [f])
    silent = Script({})  # would answer differently: any call it gets shows in .calls
    again = make_campaign(tmp_path / "b", silent, generations=1, disk_cache=True)
    try:
        replayed = again.run()
    finally:
        close(again)
    assert again.gateway.backend.calls == []
    assert [(r.id, r.status, r.val, r.test) for r in replayed.records] == \
        [(r.id, r.status, r.val, r.test) for r in result.records]


def spent_calls(d: Path) -> int:
    from metasearch.store.archive import Archive

    with Archive.open(d, readonly=True) as archive:
        return int(archive.state().meta["spent"]["calls"])


def run_campaign(d: Path, script: Script, **kw) -> tuple[Any, Any]:
    """The campaign (for its backend's calls) and its result (for its records)."""
    campaign = make_campaign(d, script, generations=4, disk_cache=True, threads=1, **kw)
    try:
        return campaign, campaign.run()
    finally:
        close(campaign)


def test_a_campaign_rebuilt_with_continue_spend_replays_its_budget_decisions(tmp_path):
    """A search that stopped at its call cap, rebuilt on a new machine from its replies.

    Replayed replies are free cache hits: without ``--continue-spend`` the rebuilt campaign
    counts nothing for them, so it searches on past where the original stopped and buys
    new calls. With it, each of the campaign's own replies is billed once more as it
    replays: the same records, the same count, no model call.
    """
    proposals = {f"g00{g}-00": {"propose": sections(agent("HALF", calls=2), f"Twice {g}")}
                 for g in range(1, 5)}
    first, result = run_campaign(tmp_path / "a", Script(proposals, seed_mode="HALF"),
                                 max_search_calls=12)
    billed = spent_calls(tmp_path / "a")
    ids = [r.id for r in result.records]
    assert billed == len(first.gateway.backend.calls) > 12 and len(ids) < 5  # stopped early
    f = tmp_path / "replies" / "1.jsonl.gz"
    f.parent.mkdir()
    assert metasearch("cache", "export", str(tmp_path / "a"), str(f)).returncode == 0
    for name, flags in (("kept", ["--continue-spend"]), ("reset", [])):
        proc = metasearch("cache", "import", str(tmp_path / name), str(f.parent), *flags,
                          "--json")
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["added"] > 0 and out["owed"] == (out["added"] if flags else 0), out
        again, replayed = run_campaign(tmp_path / name, Script(proposals, seed_mode="HALF"),
                                       max_search_calls=12)
        new_calls = len(again.gateway.backend.calls)
        if flags:
            assert new_calls == 0  # all replayed ...
            assert [r.id for r in replayed.records] == ids  # ... with the original's decisions
            assert spent_calls(tmp_path / name) == billed
            assert [r.calls - r.meta.get("cached_calls", 0) for r in replayed.records] == \
                [r.calls - r.meta.get("cached_calls", 0) for r in result.records]
        else:  # the bug --continue-spend fixes: the cap is reached only by new calls
            assert new_calls > 0 and len(replayed.records) > len(ids)
    proc = metasearch("cache", "import", str(tmp_path / "kept"), str(f), "--continue-spend",
                      "--json")
    assert json.loads(proc.stdout)["owed"] == 0  # a re-import owes nothing more
    assert json.loads(proc.stdout)["spent_recorded"]["calls"] == billed
    assert_clean_error(metasearch("cache", "import", "sqlite:///x.db#c", str(f),
                                  "--continue-spend"), "needs a campaign directory")


def test_replies_a_directory_held_before_the_import_stay_free(tmp_path):
    """A campaign seeded with a copy of another's cache owes only what it paid for."""
    held = ResponseCache(directory=tmp_path / "new" / "cache" / "responses")
    held.set(key(1), REPLY)
    f = write_lines(tmp_path / "r.jsonl.gz", {"format": "metasearch-replies", "version": 1},
                    {"key": key(1), "reply": REPLY}, {"key": key(2), "reply": REPLY})
    owed = open_owed(tmp_path / "new", create=True)
    try:
        count = import_replies(held, [f], owed=owed)
        assert (count.added, count.present, count.owed, len(owed)) == (1, 1, 1, 1)
        assert owed.settle(key(2)) and not owed.settle(key(2)) and not owed.settle(key(1))
    finally:
        owed.close()
        held.close()


def test_a_damaged_spend_header_is_refused_naming_the_file(tmp_path):
    bad = write_lines(tmp_path / "bad.jsonl.gz",
                      {"format": "metasearch-replies", "version": 1, "spent": {"calls": "many"}},
                      {"key": key(1), "reply": REPLY})
    assert_clean_error(metasearch("cache", "import", str(tmp_path / "new"), str(bad),
                                  "--continue-spend"), "bad.jsonl.gz line 1: 'spent' should be")
    cache = tmp_path / "new" / "cache" / "responses"  # checked before any reply is added
    assert not cache.exists() or len(ResponseCache(directory=cache)) == 0


def test_the_import_count_carries_the_latest_spend_any_file_records(tmp_path):
    old = write_lines(tmp_path / "1.jsonl.gz", {"format": "metasearch-replies", "version": 1,
                                               "spent": {"calls": 5, "usd": 0.5, "tokens": 9}},
                      {"key": key(1), "reply": REPLY})
    none = write_lines(tmp_path / "2.jsonl.gz", {"format": "metasearch-replies", "version": 1},
                       {"key": key(2), "reply": REPLY})
    new = write_lines(tmp_path / "3.jsonl.gz", {"format": "metasearch-replies", "version": 1,
                                               "spent": {"calls": 7, "usd": 0.25, "tokens": 3}},
                      {"key": key(3), "reply": REPLY})
    cache = ResponseCache(directory=tmp_path / "c")
    count = import_replies(cache, [new, none, old])
    assert (count.added, count.spent) == (3, {"calls": 7, "usd": 0.25, "tokens": 3})
    assert import_replies(cache, [none]).spent is None


def test_continue_spend_from_files_that_record_no_spend_still_owes_their_replies(tmp_path):
    filled(tmp_path / "c" / "responses", 2).close()  # a cache directory: no archive, no spend
    f = tmp_path / "r.jsonl.gz"
    assert metasearch("cache", "export", str(tmp_path / "c"), str(f)).returncode == 0
    proc = metasearch("cache", "import", str(tmp_path / "new"), str(f), "--continue-spend")
    assert proc.returncode == 0, proc.stderr
    assert "2 of them are the campaign's own" in proc.stdout
    assert "the files record" not in proc.stdout  # no spend recorded: none claimed


def sql_location(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}#c1"
    return f"{postgres_url()}#{fresh_campaign('replies')}"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_database_campaigns_replies_export_and_import(tmp_path, kind):
    location = sql_location(kind, tmp_path)
    cache = open_cache(location)
    for i in range(3):
        cache.set(key(i), REPLY)
    f = tmp_path / "db.jsonl.gz"
    assert export_replies(cache, f) == 3
    local = ResponseCache(directory=tmp_path / "local")
    assert import_replies(local, [f]).added == 3
    local.set(key(9), REPLY)
    back = tmp_path / "back.jsonl.gz"
    export_replies(local, back, skip=known_keys([f]))
    assert import_replies(cache, [back]).added == 1 and len(cache) == 4


def test_cli_export_import_and_its_clear_errors(tmp_path):
    filled(tmp_path / "run" / "cache" / "responses", 4).close()
    f = tmp_path / "r.jsonl.gz"
    proc = metasearch("cache", "export", str(tmp_path / "run"), str(f))
    assert proc.returncode == 0, proc.stderr
    assert "exported 4 of 4 cached replies" in proc.stdout
    proc = metasearch("cache", "import", str(tmp_path / "new"), str(f), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"added": 4, "present": 0, "differing": 0, "owed": 0,
                                       "owed_in_all": 0, "spent_recorded": None}
    assert len(ResponseCache(directory=tmp_path / "new" / "cache" / "responses")) == 4

    assert_clean_error(metasearch("cache", "export", str(tmp_path / "none"), str(f)),
                       "has no response cache")
    assert_clean_error(metasearch("cache", "export", str(tmp_path / "run"),
                                  str(tmp_path / "no" / "dir" / "r.jsonl.gz")),
                       "the directory", "does not exist")
    (tmp_path / "junk.jsonl.gz").write_bytes(b"junk")
    assert_clean_error(metasearch("cache", "import", str(tmp_path / "new"),
                                  str(tmp_path / "junk.jsonl.gz")),
                       "junk.jsonl.gz is not a gzip'd replies file")
    assert_clean_error(metasearch("cache", "export", "sqlite:///x.db", str(f)),
                       "names no campaign")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_real_local_model_eval_replays_from_imported_replies(tmp_path):
    """Real replies of the 0.5B, carried to a fresh cache: the second eval bills nothing."""
    args = ["eval", "archive/chain_of_thought.py", "--suite", "arith", "--limit", "2",
            "--max-tokens", "64", "--concurrency", "2", "--json"]
    first = metasearch(*args, "--cache-dir", str(tmp_path / "a"), timeout=1100)
    assert first.returncode == 0, first.stderr
    before = json.loads(first.stdout)
    assert before["cached_calls"] == 0 and before["calls"] > 0
    f = tmp_path / "r.jsonl.gz"
    assert metasearch("cache", "export", str(tmp_path / "a"), str(f)).returncode == 0
    (tmp_path / "b" / "responses").mkdir(parents=True)
    assert metasearch("cache", "import", str(tmp_path / "b"), str(f)).returncode == 0
    second = metasearch(*args, "--cache-dir", str(tmp_path / "b"), timeout=1100)
    assert second.returncode == 0, second.stderr
    after = json.loads(second.stdout)
    assert after["cached_calls"] == after["calls"] == before["calls"]
    assert after["score"] == before["score"]


def test_an_owed_reply_is_billed_once_at_its_recorded_price_and_never_refused(tmp_path):
    from metasearch.llm import Budget, BudgetSettings, scripted_gateway
    from metasearch.llm.cache import cache_key
    from metasearch.llm.types import LLMRequest

    req = LLMRequest(model="scripted", messages=({"role": "user", "content": "2+2?"},))
    cache = ResponseCache(directory=tmp_path / "cache")
    cache.set(cache_key(req), {**REPLY, "finish_reason": "stop", "cost_usd": 0.25})
    owed = open_owed(tmp_path, create=True)
    owed.add(cache_key(req))
    budget = Budget(BudgetSettings(max_calls=1))
    budget.add_prior(calls=1)  # the cap is reached: a new call would be refused
    gateway = scripted_gateway(["never sent"], cache=cache, budget=budget)
    gateway.owed = owed
    try:
        first, second = gateway.complete(req), gateway.complete(req)
        usage = budget.usage()
        assert (first.text, first.cost_usd, second.cost_usd) == (REPLY["text"], 0.25, 0.0)
        assert (usage.calls, usage.usd, usage.tokens) == (2, 0.25, 15)
        assert gateway.backend.calls == [] and len(owed) == 0
        assert gateway.snapshot().total.cached_calls == 1  # the second: a free hit
    finally:
        gateway.close()
