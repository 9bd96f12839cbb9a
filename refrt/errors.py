"""Error helpers: every message names the op, the argument, what was expected and what came."""
from __future__ import annotations


class RefrtError(ValueError):
    """Base class for refrt's input errors (a ValueError, so callers can catch either)."""


class RefrtTypeError(TypeError):
    """Wrong dtype or wrong kind of argument."""


def bad_value(op: str, arg: str, expected: str, got) -> RefrtError:
    return RefrtError(f"{op}: argument '{arg}' expected {expected}, got {got}")


def bad_type(op: str, arg: str, expected: str, got) -> RefrtTypeError:
    return RefrtTypeError(f"{op}: argument '{arg}' expected {expected}, got {got}")
