"""Whisper's well-known inventions on silence, noise and breathing.

Whisper was trained on subtitled video, so on audio without words it tends to emit the credits and
sign-offs those subtitles ended with. These phrases are only dropped when the utterance is short: in a
long utterance they are more likely to have been said.
"""

from __future__ import annotations

import re

# Compared after normalise(): lowercase, punctuation and surrounding spaces removed.
_BOILERPLATE: frozenset[str] = frozenset(
    {
        "you",
        "thank you",
        "thank you very much",
        "thanks for watching",
        "thank you for watching",
        "thanks for watching and see you next time",
        "please subscribe",
        "subtitles by the amaraorg community",
        "bye",
        "so",
        "okay",
        "merci",
        "merci davoir regardé cette vidéo",
        "soustitrage stfr",
        "soustitrage st 501",
        "untertitel im auftrag des zdf 2017",
        "untertitel der amaraorg community",
        "vielen dank",
        "gracias",
        "gracias por ver el video",
        "ご視聴ありがとうございました",
        "谢谢观看",
        "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
        "продолжение следует",
    }
)

# Longer than this, a boilerplate phrase is taken as genuinely spoken.
MAX_SUSPECT_UTTERANCE_S = 4.0

_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


def normalise(text: str) -> str:
    return " ".join(_PUNCTUATION.sub("", text.lower()).split())


def is_hallucination(text: str, utterance_s: float) -> bool:
    """True when `text` is boilerplate Whisper invents on non-speech and the utterance was short."""
    return utterance_s <= MAX_SUSPECT_UTTERANCE_S and normalise(text) in _BOILERPLATE
