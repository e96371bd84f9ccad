"""The second pass: a speaker's finals decoded again together, with the speech around them, to settle.

A final is decoded the moment its utterance ends, alone: it cannot hear the words that follow, and a
short one barely hears the voice. Offline decoding of the same audio makes about a third fewer errors
(bench/RESULTS.md): it decodes 30 s windows of a speaker's voiced audio (faster-whisper's VAD filter
puts the speech chunks back to back) behind the previous window's text. This pass does the same with the
finals a stream has already shown. Once the speaker has paused (settle_pause_s), or their unsettled
finals hold settle_window_s of audio, or the oldest of them ended settle_wait_s ago, those finals' audio
is put back to back into one window (at most 30 s, one language), behind the speaker's newest settled
lines (whole lines reaching back at least settle_left_context_s, as far as the window has room), and
decoded. The window's words are given back to the finals they were said in (the context's are left out);
a sentence the first pass cut in two merges its finals into one line. The result settles them: one
SETTLED event per group of finals, naming the finals it replaces, and its text never changes again. A
final left with no words is removed.

Unlike offline decoding, a window is not given the speaker's previous text as Whisper's prompt. The
left context gives the decoder the speaker's voice and words instead: the settled text as prompt made
settled text worse in every form tried (with the left context's own words, which Whisper then skipped;
with only the text before them, where a misreading such as "____" came back window after window; and
forced as the decoder's own output), on the development consultations (bench/RESULTS.md).

When a window is decoded while the speaker is still talking, the finals in its last
settle_right_context_s only lend their audio as what follows: they wait for the next window, where they
are heard with what follows them in turn.

The pass runs behind the first pass at lower priority, so a saturated machine may give it no time at
all. Its backlog is bounded by a window in flight plus settle_window_s: beyond that, a live stream's
oldest waiting finals are settled as they were (the call cannot wait), and a stream fed from a file
stops taking audio until a window is done (`behind`).

Everything here runs on the event loop; decoding is the scheduler's (asr/scheduler.py), at lower
priority than first-pass work.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from asr.agreement import UNSPACED_LANGUAGES
from asr.chinese_script import in_one_script
from asr.config import (
    COMPRESSION_RATIO_MAX,
    LOG_PROB_MIN,
    NO_SPEECH_MAX,
    SAMPLE_RATE,
    Confidence,
    RecognizerConfig,
    SpeechEvent,
    SpeechEventKind,
)
from asr.decoder import (
    SENTENCE_ENDS,
    WINDOW_S,
    Sentence,
    WindowDecoded,
    WindowTask,
    WindowTranscript,
    compression_ratio,
)
from asr.hallucinations import clean_transcript

# Audio put in a window at most: Whisper hears 30.0 s, and its last words need room.
_MAX_WINDOW_S = WINDOW_S - 0.5


@dataclass(frozen=True)
class _Final:
    event: SpeechEvent
    audio: np.ndarray

    @property
    def seq(self) -> int:
        return self.event.utterance_seq


@dataclass(frozen=True)
class Window:
    """Finals decoded together; only the first `settles` of them are settled by the result. In front of
    them, `context`: the speaker's newest settled lines (their audio, and as text their settled text),
    decoded again so that the finals are heard after what the speaker said before, as offline decoding
    hears a short answer inside 30 s of the speaker's speech. Its words are recognised and left out."""

    finals: tuple[_Final, ...]
    settles: int
    task: WindowTask
    context: tuple[_Final, ...] = ()

    @property
    def spans(self) -> list[tuple[float, float]]:
        """Where the audio of each of the context's lines, then of each final, lies in the window, in
        seconds."""
        spans, at = [], 0.0
        for final in (*self.context, *self.finals):
            length = len(final.audio) / SAMPLE_RATE
            spans.append((at, at + length))
            at += length
        return spans


class SecondPass:
    """One stream's finals waiting to be settled. Not thread-safe: the stream's event loop owns it."""

    def __init__(self, config: RecognizerConfig, *, shed_backlog: bool = True) -> None:
        self._pause = int(config.settle_pause_s * SAMPLE_RATE)
        self._window_samples = int(config.settle_window_s * SAMPLE_RATE)
        self._wait = config.settle_wait_s * SAMPLE_RATE
        self._right_context_s = config.settle_right_context_s
        self._context_samples = int(config.settle_left_context_s * SAMPLE_RATE)
        # The speaker's newest settled lines, oldest first (event: the SETTLED event, audio: its finals'):
        # the next window's left context.
        self._settled: deque[_Final] = deque()
        # Audio the queue holds at most: a window being decoded and the finals that gather meanwhile.
        self._backlog_samples = int((_MAX_WINDOW_S + config.settle_window_s) * SAMPLE_RATE)
        self._shed_backlog = shed_backlog
        self._unsettled: deque[_Final] = deque()
        self._heard = 0  # stream position the segmenter has reached
        self._in_speech = False
        self._in_flight = 0  # how many of the oldest finals a window being decoded holds

    @property
    def unsettled(self) -> int:
        return len(self._unsettled)

    @property
    def unsettled_samples(self) -> int:
        return sum(len(f.audio) for f in self._unsettled)

    @property
    def context_samples(self) -> int:
        """Audio of the settled lines kept as the next window's left context."""
        return sum(len(line.audio) for line in self._settled)

    @property
    def behind(self) -> bool:
        """More waits than the backlog's bound (only where the backlog is not shed)."""
        return self.unsettled_samples > self._backlog_samples

    def add(self, final: SpeechEvent, audio: np.ndarray) -> list[SpeechEvent]:
        """A final the stream has emitted (in utterance order), and the finals settled as they were
        because the backlog outgrew its bound (the oldest outside the window in flight)."""
        self._unsettled.append(_Final(final, audio))
        shed: list[SpeechEvent] = []
        held = self.unsettled_samples
        while self._shed_backlog and held > self._backlog_samples and len(self._unsettled) > self._in_flight:
            oldest = self._unsettled[self._in_flight]
            del self._unsettled[self._in_flight]
            held -= len(oldest.audio)
            shed.append(_as_they_were((oldest,)).event({}))
        return shed

    def heard(self, position: int, in_speech: bool) -> None:
        self._heard = position
        self._in_speech = in_speech

    def next_window(
        self, *, english_wanted: bool, glossary: tuple[str, ...], finishing: bool = False
    ) -> Window | None:
        """The window to decode now, if one is due and none is being decoded; marks it in flight."""
        if self._in_flight or not self._unsettled:
            return None
        finals = self._leading_window()
        language = finals[0].event.language
        next_one = self._unsettled[len(finals)] if len(finals) < len(self._unsettled) else None
        language_changes = next_one is not None and next_one.event.language != language
        paused = (
            not self._in_speech
            and self._heard - round(self._unsettled[-1].event.end_s * SAMPLE_RATE) >= self._pause
        )
        waited = self._heard - round(self._unsettled[0].event.end_s * SAMPLE_RATE) >= self._wait
        if finishing or paused or language_changes:
            settles = len(finals)
        elif waited or self.unsettled_samples >= self._window_samples:
            # Mid-speech: the newest finals lend their audio as what follows and wait.
            window_s = sum(len(f.audio) for f in finals) / SAMPLE_RATE
            ends, at = [], 0.0
            for final in finals:
                at += len(final.audio) / SAMPLE_RATE
                ends.append(at)
            settles = max(1, sum(1 for end in ends if end <= window_s - self._right_context_s))
        else:
            return None
        self._in_flight = len(finals)
        context = self._context(
            language, room=int(_MAX_WINDOW_S * SAMPLE_RATE) - sum(len(f.audio) for f in finals)
        )
        task = WindowTask(
            audio=np.concatenate([f.audio for f in (*context, *finals)]),
            language=language,
            english_wanted=english_wanted and language != "en",
            glossary=glossary,
        )
        return Window(tuple(finals), settles, task, context)

    def settle(self, window: Window, decoded: WindowDecoded, timings: dict[str, float]) -> list[SpeechEvent]:
        """The settled events for the window's result, in order; their finals leave the queue."""
        self._in_flight = 0
        groups = settle_groups(window, decoded)
        settled = [f for group in groups for f in group.finals]
        for _ in settled:
            self._unsettled.popleft()
        events = [group.event(timings) for group in groups]
        for group, event in zip(groups, events, strict=True):
            if event.text and self._context_samples > 0:
                self._settled.append(_Final(event, np.concatenate([f.audio for f in group.finals])))
        # Lines are kept whole, so the oldest goes only once the newer ones alone fill the context: a
        # window after one long line is still heard behind it.
        while self._settled and self.context_samples - len(self._settled[0].audio) >= self._context_samples:
            self._settled.popleft()
        return events

    def _context(self, language: str, *, room: int) -> tuple[_Final, ...]:
        """The newest settled lines in the window's language that fit in `room` samples: context in
        another language would pull the decoder into it."""
        chosen: list[_Final] = []
        for line in reversed(self._settled):
            if line.event.language != language or len(line.audio) > room:
                break
            chosen.append(line)
            room -= len(line.audio)
        return tuple(reversed(chosen))

    def _leading_window(self) -> list[_Final]:
        """The oldest unsettled finals of one language that fit in a window (at least one)."""
        first = self._unsettled[0]
        chosen, total = [first], len(first.audio)
        for final in list(self._unsettled)[1:]:
            if final.event.language != first.event.language:
                break
            if total + len(final.audio) > _MAX_WINDOW_S * SAMPLE_RATE:
                break
            chosen.append(final)
            total += len(final.audio)
        return chosen


@dataclass(frozen=True)
class SettledGroup:
    finals: tuple[_Final, ...]
    text: str
    english: str | None
    confidence: Confidence | None
    english_confidence: Confidence | None

    def event(self, timings: dict[str, float]) -> SpeechEvent:
        first, last = self.finals[0].event, self.finals[-1].event
        return SpeechEvent(
            kind=SpeechEventKind.SETTLED,
            utterance_seq=first.utterance_seq,
            text=self.text,
            stable_chars=len(self.text),
            language=first.language,
            start_s=first.start_s,
            end_s=last.end_s,
            english=self.english,
            confidence=self.confidence,
            english_confidence=self.english_confidence,
            replaces=tuple(f.seq for f in self.finals),
            timings={"speech_end": last.timings.get("speech_end", 0.0), **timings},
        )


@dataclass(frozen=True)
class _Unit:
    """A word of the window's text (a character, in languages written without spaces)."""

    text: str
    logprob: float  # its segment's mean token log probability


def settle_groups(window: Window, decoded: WindowDecoded) -> list[SettledGroup]:
    """The window's finals that its result settles, grouped into lines, with their settled text.

    The window's words are given back to the finals by aligning them with the finals' own words: the
    two texts mostly agree, and where they differ, the words around the difference say whose it is.
    (Whisper's segment timestamps were tried first: on consultation audio they came in whole seconds,
    up to a second off, and gave words to the wrong line.) A word the finals did not have goes to the
    final before it, or after it when a sentence ended in between. A final whose settled text does not
    end a sentence is merged with the next one into one line: the first pass cut a sentence in two.

    A final the decode did not hear to its end is not settled, nor any after it: the decode was cut off at
    its token limit, or Whisper ended it early and the final's last words have nothing in its text
    (long windows skip a stretch now and then). A window Whisper failed on (a repetition loop, or a text
    it gave too little probability) settles its finals as they were rather than replacing them with its
    guess.
    """
    transcript = decoded.transcript
    confidence = transcript.confidence
    if confidence.compression_ratio > COMPRESSION_RATIO_MAX or (
        confidence.avg_logprob < LOG_PROB_MIN and not _silent(confidence)
    ):
        return [_as_they_were((final,)) for final in window.finals[: window.settles]]
    before = len(window.context)
    language = window.task.language
    # The context's lines take part in the alignment with their settled text, then their words are left
    # out: they are already settled. So do the finals the decode did not hear to their end: the words it
    # heard of them before it stopped are theirs, not the last covered final's.
    aligned = (*window.context, *window.finals)
    units = [] if _silent(confidence) else _units(transcript.sentences, language)
    split, heard = _split(units, [f.event.text for f in aligned], language, transcript.cut_off)
    covered = max(0, heard - before)  # of the finals; heard counts the context's lines too
    if covered == 0:
        first = window.finals[0]
        if first.event.uncertain and not transcript.cut_off:
            # Heard, and Whisper wrote nothing there: an unsure final (noise read as words) goes.
            return [SettledGroup((first,), "", None, confidence, None)]
        # Not even the first final was heard to its end (a 15 s utterance of fast speech beyond the
        # token limit, or a decode that stopped early): it keeps its first-pass text, so that the queue
        # moves on.
        return [_as_they_were((first,))]
    settles = min(window.settles, covered)
    finals = window.finals[:covered]
    pieces = split[before:]
    english_pieces: list[list[_Unit]] | None = None
    english_heard = 0
    english = decoded.english
    if english is not None:
        english_units = _units(english.sentences, "en")
        english_split, english_heard = _split(
            english_units, [f.event.english or "" for f in aligned], "en", english.cut_off
        )
        english_pieces = english_split[before:]
    spans = window.spans[before : before + covered]  # the covered finals', in seconds of the window
    groups = _lines(pieces, spans, language, settles)
    result = []
    for first, last in groups:
        mine = [u for piece in pieces[first : last + 1] for u in piece]
        group = finals[first : last + 1]
        duration = spans[last][1] - spans[first][0]
        text = in_one_script(clean_transcript(_join(mine, language), duration), language)
        if not mine and not _silent(confidence) and not any(f.event.uncertain for f in group):
            # Whisper wrote nothing where this was said: long windows sometimes skip a stretch. A
            # confident final keeps its words; an unsure one (noise read as words) goes.
            result.append(_as_they_were(group))
            continue
        english_text, english_confidence = None, None
        if english_pieces is not None and english is not None and text:
            if before + last < english_heard:
                mine_english = [u for piece in english_pieces[first : last + 1] for u in piece]
                english_text = clean_transcript(_join(mine_english, "en"), duration) or None
                english_confidence = _confidence(mine_english, english) if english_text else None
            else:  # the translation was cut off before these finals: their first-pass English stands
                english_text = " ".join(f.event.english for f in group if f.event.english) or None
                english_confidence = _worst(f.event.english_confidence for f in group)
        line_confidence = _confidence(mine, transcript) if text else confidence
        if text and not line_confidence.uncertain and all(f.event.uncertain for f in group):
            # The first pass could not make this out, and the window's text is sure of itself: beam search
            # over speech that has no words finds fluent text it scores above Whisper's limits (speech
            # played backwards: about -0.9 with beam 5, -1.6 greedy). The line stays marked.
            line_confidence = _worst(f.event.confidence for f in group)
        result.append(SettledGroup(tuple(group), text, english_text, line_confidence, english_confidence))
    return result


# A decode that left this many of the finals' last words (characters, in languages written without
# spaces) without a counterpart stopped early: it skipped what was said there. Fewer are words the
# first pass had and the window rightly left out (a filler, a word invented on breath), and so are
# words the window has already (a first pass that looped: "okay that's okay um, okay that's okay um").
_UNHEARD_WORDS = 4
_UNHEARD_CHARACTERS = 8
# Lines merged because a sentence ran across them stop growing at this length.
_MAX_LINE_S = 20.0


def _units(sentences: Sequence[Sentence], language: str) -> list[_Unit]:
    unspaced = language in UNSPACED_LANGUAGES
    return [
        _Unit(unit, sentence.avg_logprob)
        for sentence in sentences
        for unit in (list(sentence.text.replace(" ", "")) if unspaced else sentence.text.split())
    ]


def _key(unit: str) -> str:
    """A unit as compared across the two texts: case and punctuation left out."""
    return "".join(ch for ch in unit.casefold() if ch.isalnum())


def _split(
    units: list[_Unit], finals: Sequence[str], language: str, cut_off: bool
) -> tuple[list[list[_Unit]], int]:
    """The window's units cut into one piece per final, in order (see settle_groups), and how many of
    the finals (from the first) the decode heard to their end."""
    unspaced = language in UNSPACED_LANGUAGES
    owner: list[int] = []  # the final each of the finals' units belongs to
    theirs: list[str] = []
    for index, text in enumerate(finals):
        for unit in list(text.replace(" ", "")) if unspaced else text.split():
            owner.append(index)
            theirs.append(_key(unit))
    ours = [_key(u.text) for u in units]
    assigned: list[int | None] = [None] * len(units)
    matcher = difflib.SequenceMatcher(None, theirs, ours, autojunk=False)
    opcodes = matcher.get_opcodes()
    # The finals' units up to the last one the window's text has a counterpart for were heard.
    heard_to = max((a1 for tag, _, a1, _, _ in opcodes if tag in ("equal", "replace")), default=0)
    unheard = len(theirs) - heard_to
    # Words the window already has, said again, are the first pass looping, not a stretch Whisper skipped.
    repeated = set(theirs[heard_to:]) <= set(ours)
    stopped = (
        bool(units or cut_off)
        and unheard > 0
        and (cut_off or (unheard >= (_UNHEARD_CHARACTERS if unspaced else _UNHEARD_WORDS) and not repeated))
    )
    heard = owner[heard_to] if stopped else len(finals)
    for tag, a0, a1, b0, b1 in opcodes:
        if tag in ("equal", "replace"):
            for k in range(b0, b1):
                # A replaced stretch of another length is mapped in proportion.
                assigned[k] = owner[a0 + (k - b0) * (a1 - a0) // (b1 - b0)]
    pieces: list[list[_Unit]] = [[] for _ in finals]
    if not finals:
        return pieces, heard
    k = 0
    previous = 0
    while k < len(units):
        if assigned[k] is not None:
            previous = max(previous, assigned[k] or 0)
            pieces[previous].append(units[k])
            k += 1
            continue
        run_end = k
        while run_end < len(units) and assigned[run_end] is None:
            run_end += 1
        following = assigned[run_end] if run_end < len(units) else None
        # Words only the window has: the previous final's, or the next one's once a sentence ended
        # before them (the first pass missed how that final began).
        target = previous
        for j in range(k, run_end):
            sentence_ended = j > 0 and units[j - 1].text.endswith(SENTENCE_ENDS)
            if following is not None and following > target and sentence_ended:
                target = following
            pieces[target].append(units[j])
        previous = target
        k = run_end
    return pieces, heard


def _lines(
    pieces: list[list[_Unit]], spans: Sequence[tuple[float, float]], language: str, settles: int
) -> list[tuple[int, int]]:
    """Finals grouped into lines (first, last): a final whose words do not end a sentence joins the
    next, within the finals this window settles and up to _MAX_LINE_S."""
    groups: list[tuple[int, int]] = []
    first = 0
    for index in range(settles):
        text = pieces[index][-1].text if pieces[index] else ""
        sentence_open = bool(text) and not text.endswith(SENTENCE_ENDS)
        room = index + 1 < settles and spans[index + 1][1] - spans[first][0] <= _MAX_LINE_S
        if sentence_open and room and pieces[index + 1]:
            continue
        groups.append((first, index))
        first = index + 1
    return groups


def _join(units: Sequence[_Unit], language: str) -> str:
    separator = "" if language in UNSPACED_LANGUAGES else " "
    return separator.join(u.text for u in units).strip()


def _silent(confidence: Confidence) -> bool:
    return confidence.no_speech_prob > NO_SPEECH_MAX and confidence.avg_logprob < LOG_PROB_MIN


def _confidence(units: Sequence[_Unit], transcript: WindowTranscript) -> Confidence:
    """A line's confidence: its words' log probabilities, the window's no-speech probability, and the
    line's own compression ratio."""
    if not units:
        return transcript.confidence
    average = sum(u.logprob for u in units) / len(units)
    text = " ".join(u.text for u in units)
    return Confidence(
        round(average, 4),
        transcript.confidence.no_speech_prob,
        round(compression_ratio(text), 4),
        sampled=transcript.confidence.sampled,
    )


def _worst(confidences: Iterable[Confidence | None]) -> Confidence | None:
    known = [c for c in confidences if c is not None]
    return min(known, key=lambda c: c.avg_logprob) if known else None


def _as_they_were(finals: Sequence[_Final]) -> SettledGroup:
    """Finals settled with their first-pass text: the second pass had nothing better to say."""
    events = [f.event for f in finals]
    separator = "" if events[0].language in UNSPACED_LANGUAGES else " "
    return SettledGroup(
        tuple(finals),
        separator.join(e.text for e in events),
        " ".join(e.english for e in events if e.english) or None,
        _worst(e.confidence for e in events),
        _worst(e.english_confidence for e in events),
    )
