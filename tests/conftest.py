from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from hypothesis import settings
from structlog.testing import LogCapture

from gatekeeper.app import Gatekeeper

from .helpers import make_config, running

# Property tests check behaviour, not speed: on a shared two-core machine Hypothesis's default
# 200 ms deadline per example failed tests/inspectors/test_compute.py while other work ran.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")


@pytest.fixture
def log_output() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event emitted during the test, after secret masking."""
    from gatekeeper.logs import mask_secrets

    capture = LogCapture()
    structlog.configure(processors=[mask_secrets, capture])
    yield capture.entries
    structlog.reset_defaults()


@pytest.fixture
async def gk(tmp_path: Path, log_output: list[dict[str, Any]]) -> AsyncIterator[Gatekeeper]:
    async with running(make_config(tmp_path)) as instance:
        yield instance


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
