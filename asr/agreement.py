"""LocalAgreement-2 for partial captions: what two successive hypotheses agree on is kept stable."""

from __future__ import annotations

# Written without spaces between words: agreement is over characters, since a "word" split on spaces
# would be the whole sentence and nothing would ever become stable.
UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "km", "bo", "yue"})


class LocalAgreement:
    """Tracks one utterance's partial hypotheses and the prefix promised not to change.

    Whisper re-decodes the growing utterance from scratch, so a later hypothesis may disagree with a
    unit already promised. The promise is kept anyway: the promised units are spliced in front of the
    new hypothesis's remaining ones. So the stable prefix, and `stable_chars`, never shrink. The final
    transcript is not bound by it.
    """

    def __init__(self, language: str) -> None:
        self._by_char = language in UNSPACED_LANGUAGES
        self._separator = "" if self._by_char else " "
        self._committed: list[str] = []
        self._previous: list[str] = []

    @property
    def size(self) -> int:
        """Units held: bounded by the utterance, which max_utterance_s bounds."""
        return len(self._committed) + len(self._previous)

    def update(self, hypothesis: str) -> tuple[str, int]:
        """Return the text to show and how many of its leading characters are stable."""
        units = list(hypothesis.strip()) if self._by_char else hypothesis.split()
        n = len(self._committed)
        # Aligned by unit count: if the hypothesis rewrote promised units, its own versions are dropped.
        candidate = [*self._committed, *units[n:]]
        agreed = n
        while (
            agreed < len(candidate)
            and agreed < len(self._previous)
            and candidate[agreed] == self._previous[agreed]
        ):
            agreed += 1
        self._committed = candidate[:agreed]
        self._previous = candidate
        text = self._separator.join(candidate)
        # The separating space after the stable part is not counted, so the count cannot drop by one
        # when a later hypothesis ends right at the stable part.
        return text, len(self._separator.join(self._committed))
