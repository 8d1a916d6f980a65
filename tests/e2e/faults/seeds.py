"""The harness's seed: random unless FLOWTRUX_FAULT_SEED fixes it, and named wherever a failure
is reported, so that the same graphs, bodies and client behaviours can be played again."""

import os
import random

import attrs

SEED_VARIABLE = "FLOWTRUX_FAULT_SEED"


@attrs.frozen
class Seed:
    value: int

    @classmethod
    def from_environment(cls) -> "Seed":
        """FLOWTRUX_FAULT_SEED when it is set, else a fresh random seed."""
        text = os.environ.get(SEED_VARIABLE, "").strip()
        if text:
            return cls(int(text))
        return cls(random.SystemRandom().randrange(2**32))

    def rng(self, purpose: str) -> random.Random:
        """A generator of its own for `purpose` (a test's name), so that one test's draws do not
        depend on which other tests ran before it."""
        return random.Random(f"{self.value}/{purpose}")

    @property
    def replay(self) -> str:
        return f"{SEED_VARIABLE}={self.value} .venv/bin/pytest tests/e2e/faults"

    def __str__(self) -> str:
        return f"seed {self.value} (replay: {self.replay})"
