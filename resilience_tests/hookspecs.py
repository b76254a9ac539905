"""The plugin's own pytest hooks: how a run's journal reaches whatever reports it.

Declared like any pytest plugin's hooks (``pluginmanager.add_hookspecs``); implement them in a conftest.py or
a plugin to receive every experiment's journal as it ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from resilience_tests.experiment.journal import Journal


@pytest.hookspec
def pytest_resilience_journal(config: pytest.Config, item: pytest.Item, journal: Journal) -> None:
    """An experiment ended (passed, failed, was interrupted, or was only planned with ``--dry-run``).

    Called from the experiment's test call, so Allure steps and attachments made here belong to its test.
    """
