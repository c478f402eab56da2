"""Turning an exception into the one line a user sees after `error: `."""
from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of str(exc), or the exception's class name when its message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
