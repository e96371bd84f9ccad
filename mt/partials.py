"""How often a speaker's partial captions are translated.

Partials arrive several times a second and mostly repeat themselves; translating each one would spend
the model's time on text that is about to change and delay the finals listeners actually keep. A
partial is translated only when its stable part (the prefix recognition will not revise) has grown since
the last translated partial of that utterance, and not more often than `min_interval_s`. A final is
always translated and ends the utterance (`forget`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Seen:
    stable_chars: int
    at: float


class PartialTranslationPolicy:
    """Decides, per utterance key, whether a partial caption is worth a model call. Not thread-safe: use
    it from the event loop only."""

    def __init__(self, min_interval_s: float = 0.8, max_keys: int = 1024) -> None:
        if min_interval_s < 0 or max_keys < 1:
            raise ValueError("min_interval_s must be >= 0 and max_keys >= 1")
        self.min_interval_s = min_interval_s
        self.max_keys = max_keys
        self._seen: OrderedDict[str, _Seen] = OrderedDict()

    def should_translate(self, key: str, stable_text: str, now: float) -> bool:
        """True when `stable_text` (the partial's stable prefix) has grown since the last translated
        partial of utterance `key` and at least min_interval_s passed; records the decision when True."""
        grown = len(stable_text.strip())
        if grown == 0:
            return False
        seen = self._seen.get(key)
        if seen is not None:
            if grown <= seen.stable_chars or now - seen.at < self.min_interval_s:
                return False
            self._seen.move_to_end(key)
        self._seen[key] = _Seen(grown, now)
        # Utterances whose final never came (a speaker who dropped) must not grow memory without bound.
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return True

    def forget(self, key: str) -> None:
        """The utterance's final arrived: it supersedes every partial, so its state goes."""
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)
