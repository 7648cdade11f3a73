"""A world-searchable scratch directory for Dovecot servers (they run as nobody)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def dovecot_dir() -> Iterator[Path]:
    """A fresh directory Dovecot's unprivileged processes can reach; removed afterwards."""
    # Not pytest's tmp_path: it is private to root, and Dovecot runs as nobody.
    base = tempfile.mkdtemp(prefix="mailsync-dovecot-")
    os.chmod(base, 0o755)
    try:
        yield Path(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
