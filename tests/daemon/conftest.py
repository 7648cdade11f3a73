"""Fixtures of the daemon tests (helpers live in ``harness.py``)."""

from tests.daemon.harness import mock_server

__all__ = ["mock_server"]
