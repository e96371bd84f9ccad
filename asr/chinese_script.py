"""Chinese in one script: Whisper writes simplified and traditional characters, even within one
speaker's captions. Recognised Chinese is normalised to simplified; a reader who prefers traditional
characters gets them converted back per reader (`to_traditional`). Both directions use OpenCC's
phrase-level dictionaries, which pick the right character where one simplified character stands for
several traditional ones (发 -> 發 or 髮) by the words around it.
"""

from __future__ import annotations

import threading
from functools import cache

import opencc

# Whisper's code for Chinese; Cantonese ("yue") is conventionally written in traditional characters
# and is left as Whisper writes it.
CHINESE = "zh"

# The recogniser's threads and the server's event loop both convert; OpenCC does not say its
# converters are thread-safe, and a conversion takes microseconds.
_lock = threading.Lock()


@cache
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def _convert(config: str, text: str) -> str:
    if not text:
        return text
    with _lock:
        return _converter(config).convert(text)


def to_simplified(text: str) -> str:
    """Traditional characters (and Taiwan/Hong Kong variants) to simplified ones; others untouched."""
    return _convert("t2s", text)


def to_traditional(text: str) -> str:
    """Simplified characters to traditional ones (OpenCC's standard traditional, not a regional one)."""
    return _convert("s2t", text)


def in_one_script(text: str, language: str) -> str:
    """Recognised text as captions show it: Chinese in simplified characters, other languages as is."""
    return to_simplified(text) if language == CHINESE else text
