"""Shared test setup: pytest (prepend import mode) puts this directory on sys.path, so tests in
sub-directories import the shared helpers (`_esdk_helpers`, `_mpl_helpers`, `pgserver`) as
top-level modules. Suite-wide fixtures: a PostgreSQL server for the tests that need one."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pgserver import ENABLE_HINT, create_database, postgres_server


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    """A PostgreSQL server's URL: $ENVELOPE_TEST_POSTGRES_URL, or one started for the session.

    Skipped with the command that enables it when no server can be had, except in CI
    (``CI=true``), where a missing server fails the run.
    """
    try:
        with postgres_server() as (url, _server):
            yield url
    except LookupError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but no PostgreSQL: {ENABLE_HINT}")
        pytest.skip(ENABLE_HINT)


@pytest.fixture(scope="module")
def postgres_url(postgres_base_url: str) -> str:
    """A fresh database for this test module."""
    return create_database(postgres_base_url)
