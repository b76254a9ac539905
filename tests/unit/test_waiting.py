from __future__ import annotations

import pytest

from resilience_tests.errors import WaitTimeoutError
from resilience_tests.waiting import wait_until


def test_returns_the_first_truthy_probe_result() -> None:
    calls = iter([None, 0, "done"])
    assert wait_until("thing", lambda: next(calls), timeout=5, interval=0.01) == "done"


def test_timeout_names_the_wait_and_what_is_pending() -> None:
    with pytest.raises(WaitTimeoutError) as info:
        wait_until("drain of node-a2", lambda: False, timeout=0.2, interval=0.01,
                   pending=lambda: "web-5f7 blocked by PDB web-pdb")
    assert str(info.value) == ("drain of node-a2 did not finish in 0 s; "
                               "still waiting for web-5f7 blocked by PDB web-pdb")
    assert info.value.what == "drain of node-a2"
