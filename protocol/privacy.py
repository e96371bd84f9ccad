"""What a log line may say about an exception: its type and where it happened, never its text.

Exception messages and reprs carry values (a KeyError names the missing key, a model's error may quote
its input), and in BabelCall those values can be words of a medical conversation. Logs get this
description instead of `log.exception`'s message and traceback.
"""

from __future__ import annotations

import traceback
from pathlib import Path


def describe_exception(error: BaseException, *, frames: int = 3) -> str:
    """'KeyError in mt/glossary.py:55 substitute ← mt/glossary.py:60 protect': the type and the
    innermost frames (file, line, function), with no message, arguments or local values."""
    stack = traceback.extract_tb(error.__traceback__)[-frames:]
    where = " ← ".join(f"{_short(frame.filename)}:{frame.lineno} {frame.name}" for frame in reversed(stack))
    return f"{type(error).__name__} in {where}" if where else type(error).__name__


def _short(filename: str) -> str:
    path = Path(filename)
    return "/".join(path.parts[-2:])
