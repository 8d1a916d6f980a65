"""The servers outside FlowTrux, as fixtures: `target` (tests/outside/target.py) and `llm`
(tests/outside/fake_llm.py). Another conftest gets them by importing them the same way."""

from tests.outside.fake_llm import llm
from tests.outside.target import target

__all__ = ["llm", "target"]
