"""Which corrections to hypercorn are in place during each test here. Serving elsewhere in the
suite applies them for the whole process, so each test starts from upstream hypercorn (`upstream`,
autouse) and puts back the corrections it needs; monkeypatch puts things back afterwards."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from flowtrux.http import hypercorn_fixes
from flowtrux.http.hypercorn_fixes.fix import Fix


@pytest.fixture(autouse=True)
def upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstream hypercorn: every correction taken out."""
    for fix in hypercorn_fixes.FIXES:
        monkeypatch.setattr(fix.owner, fix.name, fix.original)


@pytest.fixture
def corrected(upstream: None) -> None:
    """Every correction in place, as `hypercorn_fixes.apply` puts them when FlowTrux serves."""
    hypercorn_fixes.apply()
    assert hypercorn_fixes.is_applied()


@pytest.fixture
def all_corrections_but(
    upstream: None, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Sequence[Fix]], None]:
    """`all_corrections_but(fixes)` puts every correction in place but `fixes`."""

    def correct(left_out: Sequence[Fix]) -> None:
        for fix in hypercorn_fixes.FIXES:
            if fix not in left_out:
                monkeypatch.setattr(fix.owner, fix.name, fix.corrected)

    return correct
