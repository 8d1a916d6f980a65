"""The HTTP target of tests/outside, for the guard's redirect tests."""

from tests.outside.target import target

__all__ = ["target"]
