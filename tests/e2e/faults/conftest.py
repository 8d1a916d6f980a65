"""The fault harness's fixtures: one seed for the session, printed in each test's output and at
the end of the session's report."""

import pytest

from tests.e2e.faults.seeds import Seed

_SEED = Seed.from_environment()
_used: list[str] = []  # the tests that used the seed


@pytest.fixture
def fault_seed(request: pytest.FixtureRequest) -> Seed:
    """The session's seed, printed in the test's output (shown with -s or on a failure)."""
    _used.append(request.node.nodeid)
    print(f"\nfault harness {_SEED} [{request.node.name}]")
    return _SEED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The seed at the end of the report, when a test of the harness ran."""
    if _used:
        terminalreporter.write_line(f"fault harness {_SEED}")
