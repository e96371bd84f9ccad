"""LocalAgreement-2 for partial captions: words two successive hypotheses agree on are kept stable."""

from __future__ import annotations


class LocalAgreement:
    """Tracks one utterance's partial hypotheses and the word prefix promised not to change.

    Whisper re-decodes the growing utterance from scratch, so a later hypothesis may disagree with a
    word already promised. The promise is kept anyway: the promised words are spliced in front of the
    new hypothesis's remaining words. The final transcript is not bound by it.
    """

    def __init__(self) -> None:
        self._committed: list[str] = []
        self._previous: list[str] = []

    def update(self, hypothesis: str) -> tuple[str, int]:
        """Return the text to show and how many of its leading characters are stable."""
        words = hypothesis.split()
        n = len(self._committed)
        # Aligned by word count: if the hypothesis rewrote promised words, its own versions are dropped.
        candidate = [*self._committed, *words[n:]]
        agreed = n
        while (
            agreed < len(candidate)
            and agreed < len(self._previous)
            and candidate[agreed] == self._previous[agreed]
        ):
            agreed += 1
        self._committed = candidate[:agreed]
        self._previous = candidate
        stable = len(" ".join(self._committed))
        # The separating space belongs to the stable part, so a listener can append after it.
        text = " ".join(candidate)
        if self._committed and len(candidate) > len(self._committed):
            stable += 1
        return text, stable
