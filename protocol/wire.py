"""Reading untrusted JSON: bounded in size, nesting and number length, with one error for all of it.

`json.loads` alone answers hostile input with RecursionError (20,000 nested arrays), ValueError
(a 5,000-digit integer exceeds Python's int digit limit) or a structure deep enough to exhaust the
recursion of whatever walks it next. Every REST body and signalling message goes through
`parse_json_object` instead, so each of those is a clear `bad_json` and nothing else.
"""

from __future__ import annotations

import json
from typing import Any

from protocol.errors import ErrorCode, ProtocolError

MAX_DEPTH = 16  # the deepest honest message (a glossary term's renderings) is 4 levels
MAX_NUMBER_CHARS = 40  # enough for any float or int a client has reason to send


class WireError(ProtocolError):
    """Input that is not an acceptable JSON object; `code` is the error code to answer with."""


def _bounded_number(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        if len(text) > MAX_NUMBER_CHARS:
            raise WireError(ErrorCode.BAD_JSON, f"a number longer than {MAX_NUMBER_CHARS} characters")
        return kind(text)

    return parse


def _reject_constant(name: str) -> Any:
    raise WireError(ErrorCode.BAD_JSON, f"{name} is not JSON")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests deeper than `limit`, walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json_object(raw: str | bytes, *, max_bytes: int) -> dict[str, Any]:
    """The JSON object in `raw`, or WireError: too_large, bad_json (not JSON, not UTF-8, too deep,
    numbers too long, NaN/Infinity) or bad_message (JSON, but not an object)."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise WireError(ErrorCode.TOO_LARGE, f"over {max_bytes} bytes")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(
            text,
            parse_int=_bounded_number(int),
            parse_float=_bounded_number(float),
            parse_constant=_reject_constant,
        )
    except WireError:
        raise
    except RecursionError:
        raise WireError(ErrorCode.BAD_JSON, f"nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as error:
        # JSONDecodeError's message names a position, never the content.
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8 JSON"
        raise WireError(ErrorCode.BAD_JSON, f"not JSON: {reason}") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise WireError(ErrorCode.BAD_JSON, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(value, dict):
        raise WireError(ErrorCode.BAD_MESSAGE, "a message is a JSON object")
    return value
