"""The engine's errors, with messages fit for the user (the window shows them as they are)."""

from __future__ import annotations

from medcore.models import ModelError


class EngineError(RuntimeError):
    """A translation that cannot be done, with a message fit for the user."""


class ContextLimitError(EngineError):
    """The prompt for even the smallest piece of input does not fit the model's context."""


def describe_exception(exc: BaseException) -> str:
    """One line for the user: our own errors as they are, anything else with its type."""
    if isinstance(exc, (ModelError, EngineError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
