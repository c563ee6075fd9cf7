"""Shared by the CLI tests: ``api.cli.main`` configures the process's logging (one JSON handler on
the root logger, replacing the others), so each test that calls it gets the root logger back as
it was (pytest's capture handlers included) afterwards."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Snapshot the root logger's handlers and level; put them back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
