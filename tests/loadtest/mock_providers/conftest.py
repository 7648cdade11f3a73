"""Fixtures for the mock provider tests: a fresh in-process mock per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from loadtest.mock_providers.config import MockConfig
from loadtest.mock_providers.testing import MockHarness


@pytest.fixture
def config() -> MockConfig:
    """The config the ``mock`` fixture starts from; a module may override it."""
    return MockConfig(seed=7)


@pytest.fixture
async def mock(config: MockConfig) -> AsyncIterator[MockHarness]:
    """A fresh mock app on a manual clock, with a client bound to it."""
    async with MockHarness.start(config) as harness:
        yield harness
