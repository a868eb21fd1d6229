"""The PostgreSQL the shared-state tests run against: ``METASEARCH_TEST_POSTGRES`` or a skip.

`.ci/run` starts a server (``.ci/postgres.sh``, as the ``postgres`` user) and
exports the URL; locally, ``export METASEARCH_TEST_POSTGRES="$(bash .ci/postgres.sh)"``.
Each test works in its own campaign name, so no test sees another's rows.
"""

from __future__ import annotations

import os
import uuid

import pytest

ENV = "METASEARCH_TEST_POSTGRES"


def postgres_url() -> str:
    """The test server's URL, or skip the test saying how to get one."""
    url = os.environ.get(ENV)
    if not url:
        pytest.skip(f"{ENV} is unset: no PostgreSQL to test against. Start one with "
                    f'`export {ENV}="$(bash .ci/postgres.sh)"` (as .ci/run does).')
    return url


def fresh_campaign(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
