"""A speaker's recent finals, decoded again in front of each new final as Whisper's left context.

Whisper recognises a 4 s utterance cut out of a conversation noticeably worse than the same words
inside 30 s of it: alone it hears little of the voice and reads none of the sentence being continued.
So each final is encoded behind the audio of the speaker's previous finals, and the decoder is handed
their text as a prefix it has "already said": it then only writes the new utterance, with the voice
and the topic in view. On one track per speaker, as a call has it (five generated consultations,
Whisper base, greedy), streaming WER went from 17.9% to 14.9% with 20 s of context. With both voices
in one stream the same five gained far less (18.1% to 17.8%), since the context was then partly the
other speaker's voice (bench/RESULTS.md, ninth session).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class _Final:
    utterance_seq: int
    audio: np.ndarray
    text: str
    language: str
    english: str | None


@dataclass(frozen=True)
class ContextWindow:
    audio: np.ndarray  # previous finals' audio, oldest first, back to back
    text: str  # what was recognised in it
    english: str | None  # Whisper's English for it; None when any of those finals had none


class SpeakerContext:
    """Bounded history of one stream's finals. Only the recogniser's scheduler thread touches it.

    Entries are keyed by utterance: a final decoded early, while its closing silence still ran (a
    tentative one), is remembered at once, and if speech resumed the utterance's real final replaces
    it. A final is decoded behind earlier utterances only, never behind an early decode of itself.
    """

    def __init__(self, max_samples: int) -> None:
        self._max_samples = max_samples
        self._finals: deque[_Final] = deque()
        self._samples = 0

    @property
    def samples(self) -> int:
        return self._samples

    def remember(
        self, utterance_seq: int, audio: np.ndarray, text: str, language: str, english: str | None
    ) -> None:
        """Keep utterance `utterance_seq`'s final (replacing an earlier decode of it); forget the oldest
        beyond max_s. Empty text is not context, but still replaces an earlier decode."""
        if self._finals and self._finals[-1].utterance_seq == utterance_seq:
            self._samples -= len(self._finals.pop().audio)
        if not text or self._max_samples <= 0:
            return
        self._finals.append(_Final(utterance_seq, audio, text, language, english))
        self._samples += len(audio)
        while self._finals and self._samples > self._max_samples:
            self._samples -= len(self._finals.popleft().audio)

    def window(
        self, utterance_seq: int, language: str, max_samples: int, *, english_wanted: bool
    ) -> ContextWindow | None:
        """The newest finals before `utterance_seq` in `language` (and with English, if wanted) fitting
        in max_samples."""
        chosen: list[_Final] = []
        total = 0
        for final in reversed(self._finals):
            if final.utterance_seq >= utterance_seq:
                continue  # an early decode of this same utterance, which speech went on past
            if final.language != language or (english_wanted and final.english is None):
                break  # context in another language would pull the decoder into it
            if total + len(final.audio) > max_samples:
                break
            chosen.append(final)
            total += len(final.audio)
        if not chosen:
            return None
        chosen.reverse()
        english = " ".join(f.english for f in chosen if f.english) if english_wanted else None
        return ContextWindow(
            audio=np.concatenate([f.audio for f in chosen]),
            text=" ".join(f.text for f in chosen),
            english=english,
        )
