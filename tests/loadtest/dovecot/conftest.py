"""A world-searchable scratch directory for Dovecot servers (they run as nobody)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.dovecot.server import scratch_dir


@pytest.fixture
def dovecot_dir() -> Iterator[Path]:
    """A fresh directory Dovecot's unprivileged processes can reach; removed afterwards."""
    # Not pytest's tmp_path: it is private to root, and Dovecot runs as nobody.
    base = scratch_dir()
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
