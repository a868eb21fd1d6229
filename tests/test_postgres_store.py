"""The archive store contract on every backend: JSONL, sqlite and PostgreSQL (one suite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from postgres_kit import fresh_campaign, postgres_url

from metasearch.store.archive import Archive
from metasearch.store.sql_archive import SqlArchive
from metasearch.testing.store_contract import CHECKS


@pytest.fixture(scope="session")
def pg_url() -> str:
    return postgres_url()


def _factory(backend: str, tmp_path: Path, request: Any) -> Any:
    if backend == "jsonl":
        return lambda readonly=False: Archive.open(tmp_path / "c", readonly=readonly)
    url = (f"sqlite:///{tmp_path / 'shared.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    name = fresh_campaign()
    return lambda readonly=False: SqlArchive.open(url, campaign=name, root=tmp_path,
                                                  readonly=readonly)


@pytest.mark.parametrize("backend", ["jsonl", "sqlite", "postgresql"])
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_store_contract(check: Any, backend: str, tmp_path: Path, request: Any) -> None:
    check(_factory(backend, tmp_path, request))
