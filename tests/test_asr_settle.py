"""The second pass (asr/settle.py): finals settled from windows of a speaker's speech, in order and
once; confidence marks on unintelligible speech; Chinese in one script.

The first tests build windows and their decodes by hand (fast, exact); the rest run the real Whisper
base model on real and generated speech."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import audio_fixtures
import jiwer
import numpy as np
import pytest
from audio_fixtures import collect_transcripts
from faster_whisper import decode_audio

from asr import (
    Confidence,
    RecognizerConfig,
    SpeechEvent,
    SpeechEventKind,
    SpeechRecognizer,
    to_simplified,
    to_traditional,
)
from asr.config import SAMPLE_RATE
from asr.decoder import Attempt, Sentence, WindowDecoded, WindowTranscript, window_sentences
from asr.settle import SecondPass, Window, settle_groups

CHUNK = SAMPLE_RATE // 50
CLEAR = Confidence(-0.2, 0.01, 1.2)


def final(seq: int, text: str, start_s: float, end_s: float) -> SpeechEvent:
    return SpeechEvent(SpeechEventKind.FINAL, seq, text, len(text), "en", start_s, end_s, confidence=CLEAR)


def window_of(finals: list[SpeechEvent], *, pause_s: float = 2.0) -> tuple[SecondPass, Window]:
    """The window a stream's second pass makes of these finals once the speaker has paused."""
    second_pass = SecondPass(RecognizerConfig())
    for f in finals:
        second_pass.add(f, np.zeros(int((f.end_s - f.start_s) * SAMPLE_RATE), np.float32))
    second_pass.heard(int((finals[-1].end_s + pause_s) * SAMPLE_RATE), in_speech=False)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None
    return second_pass, window


def decoded(*sentences: str, cut_off: bool = False, logprob: float = -0.2) -> WindowDecoded:
    """A window's decode; cut off at its token limit, it no longer holds the sentence it stopped in."""
    written = tuple(Sentence(text, logprob) for text in sentences)
    return WindowDecoded(WindowTranscript(written, cut_off, Confidence(logprob, 0.01, 1.3)), None)


def test_a_sentence_the_first_pass_cut_in_two_settles_as_one_line() -> None:
    finals = [final(0, "I've had a pain in my", 0.0, 2.0), final(1, "lower back since Monday.", 2.5, 4.5)]
    second_pass, window = window_of(finals)
    events = second_pass.settle(window, decoded("I've had a pain in my lower back since Monday."), {})
    [settled] = events
    assert settled.kind is SpeechEventKind.SETTLED
    assert settled.replaces == (0, 1) and settled.utterance_seq == 0
    assert settled.text == "I've had a pain in my lower back since Monday."
    assert (settled.start_s, settled.end_s) == (0.0, 4.5)
    assert second_pass.unsettled == 0


def test_an_arabic_question_ends_its_line() -> None:
    questions = ["هل تشعر بألم في الصدر؟", "منذ متى بدأ الألم؟"]
    finals = [
        replace(final(0, questions[0], 0.0, 2.0), language="ar"),
        replace(final(1, questions[1], 2.5, 4.5), language="ar"),
    ]
    second_pass, window = window_of(finals)
    events = second_pass.settle(window, decoded(*questions), {})
    assert [(e.replaces, e.text) for e in events] == [((0,), questions[0]), ((1,), questions[1])]


def test_words_go_back_to_the_final_they_were_said_in() -> None:
    finals = [
        final(0, "It started three days ago.", 0.0, 2.0),
        final(1, "pain in the chest.", 2.5, 4.0),  # the first pass lost how it began
        final(2, "Okay.", 4.5, 5.0),
    ]
    second_pass, window = window_of(finals)
    result = decoded("It started three days ago. And there is pain in the chest. Okay.")
    events = second_pass.settle(window, result, {})
    assert [(e.replaces, e.text) for e in events] == [
        ((0,), "It started three days ago."),
        ((1,), "And there is pain in the chest."),
        ((2,), "Okay."),
    ]


def test_a_cut_off_decode_settles_only_the_finals_it_covered() -> None:
    finals = [final(0, "First sentence.", 0.0, 4.0), final(1, "Second sentence.", 4.0, 8.0)]
    second_pass, window = window_of(finals)
    events = second_pass.settle(window, decoded("First sentence.", cut_off=True), {})
    assert [e.replaces for e in events] == [(0,)]
    assert second_pass.unsettled == 1  # waits for the next window


def test_finals_after_a_decode_that_stopped_early_are_not_settled_by_it() -> None:
    finals = [final(0, "Where does it hurt?", 0.0, 4.0), final(1, "Any other medical problems?", 4.0, 8.0)]
    second_pass, window = window_of(finals)
    # Whisper ended its decode after the first question: the one after it was skipped.
    events = second_pass.settle(window, decoded("Where does it hurt?"), {})
    assert [e.replaces for e in events] == [(0,)]
    assert second_pass.unsettled == 1  # heard in the next window


def test_words_the_window_rightly_leaves_out_at_the_end_do_not_hold_a_final_back() -> None:
    # "Thank you" invented by the first pass on a breath: the window does not have it, and that is not
    # a decode that stopped early.
    finals = [final(0, "Where does it hurt?", 0.0, 3.0), final(1, "In my chest. Thank you.", 3.5, 6.0)]
    second_pass, window = window_of(finals)
    events = second_pass.settle(window, decoded("Where does it hurt?", "In my chest."), {})
    assert [(e.replaces, e.text) for e in events] == [((0,), "Where does it hurt?"), ((1,), "In my chest.")]
    assert second_pass.unsettled == 0


def test_a_first_pass_that_looped_at_the_end_of_a_final_settles_with_the_windows_words() -> None:
    looped = final(0, "No, no, okay, that's okay, um, no, no, okay, that's okay, um", 0.0, 4.0)
    second_pass, window = window_of([looped])
    [settled] = second_pass.settle(window, decoded("No, no, okay, that's okay. Um..."), {})
    assert settled.text == "No, no, okay, that's okay. Um..."


def test_a_final_whose_end_a_decode_skipped_keeps_its_own_words() -> None:
    second_pass = SecondPass(RecognizerConfig(settle_left_context_s=10.0))
    settled_after_a_pause(second_pass, [final(0, "Okay.", 0.0, 2.0)], "Okay.")
    question = final(1, "Sorry, I forgot. Do you have any other medical problems?", 5.0, 12.0)
    second_pass.add(question, np.zeros(7 * SAMPLE_RATE, np.float32))
    second_pass.heard(14 * SAMPLE_RATE, in_speech=False)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None and len(window.context) == 1
    # Context and first half heard, then the decode stopped.
    [settled] = second_pass.settle(window, decoded("Okay.", "Sorry, I forgot."), {})
    assert (settled.replaces, settled.text) == ((1,), question.text)


def test_an_unsure_final_a_decode_stopped_before_is_removed() -> None:
    second_pass = SecondPass(RecognizerConfig(settle_left_context_s=10.0))
    settled_after_a_pause(second_pass, [final(0, "Okay.", 0.0, 2.0)], "Okay.")
    noise = replace(final(1, "I am the king of the world.", 5.0, 9.0), confidence=Confidence(-1.4, 0.3, 1.2))
    second_pass.add(noise, np.zeros(4 * SAMPLE_RATE, np.float32))
    second_pass.heard(11 * SAMPLE_RATE, in_speech=False)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None
    # Whisper heard the context's word and nothing in the 4 s after it.
    [settled] = second_pass.settle(window, decoded("Okay."), {})
    assert (settled.replaces, settled.text) == ((1,), "")


def test_a_line_the_first_pass_was_unsure_of_stays_marked_when_the_window_reads_it_fluently() -> None:
    unsure = Confidence(-1.6, 0.14, 1.7, sampled=True)
    finals = [
        replace(final(0, "y no me den el pomi,", 0.0, 3.0), confidence=unsure),
        final(1, "The patient is stable.", 3.5, 6.0),
    ]
    second_pass, window = window_of(finals)
    events = second_pass.settle(
        window, decoded("Vamos con el nuevo dia.", "The patient is stable.", logprob=-0.9), {}
    )
    assert [(e.replaces, e.uncertain) for e in events] == [((0,), True), ((1,), False)]


def test_a_window_decode_is_cut_into_sentences_each_scored_by_its_own_words(whisper_model_path: Path) -> None:
    """Windows are decoded without timestamps: their text is cut at sentence ends (full-width ones
    too), each sentence with its own tokens' probability, and a decode cut off at its token limit
    loses the sentence it stopped in."""
    import tokenizers
    from faster_whisper.tokenizer import Tokenizer

    vocabulary = tokenizers.Tokenizer.from_file(str(whisper_model_path / "tokenizer.json"))

    def attempt(tokenizer: Tokenizer, sentences: list[tuple[str, float]]) -> Attempt:
        tokens: list[int] = []
        logprobs: list[float] = []
        for text, logprob in sentences:
            encoded = tokenizer.encode(text)
            tokens += encoded
            logprobs += [logprob] * len(encoded)
        text = tokenizer.decode(tokens)
        return Attempt(tuple(tokens), text, -0.5, 1.2, 0.01, token_logprobs=tuple(logprobs))

    english = Tokenizer(vocabulary, True, task="transcribe", language="en")
    spoken = attempt(english, [(" Where does it hurt?", -0.1), (" In my chest, since", -1.2)])
    whole = window_sentences(spoken, english, "en", cut_off=False)
    assert [s.text for s in whole.sentences] == ["Where does it hurt?", "In my chest, since"]
    sure, unsure = (s.avg_logprob for s in whole.sentences)
    assert -0.1 < sure < -0.05 and unsure < -0.9
    cut = window_sentences(spoken, english, "en", cut_off=True)
    assert [s.text for s in cut.sentences] == ["Where does it hurt?"] and cut.cut_off

    chinese = Tokenizer(vocabulary, True, task="transcribe", language="zh")
    said = attempt(chinese, [("你哪里疼？", -0.2), ("胸口疼。", -0.3), ("三天了", -0.4)])
    assert [s.text for s in window_sentences(said, chinese, "zh", cut_off=False).sentences] == [
        "你哪里疼？",
        "胸口疼。",
        "三天了",
    ]


def test_a_window_whisper_failed_on_settles_the_finals_as_they_were() -> None:
    finals = [final(0, "Take one tablet.", 0.0, 2.0)]
    second_pass, window = window_of(finals)
    [settled] = second_pass.settle(window, decoded("Cake on the table.", logprob=-1.4), {})
    assert settled.text == "Take one tablet." and settled.replaces == (0,)


def test_no_window_while_the_speaker_goes_on() -> None:
    second_pass = SecondPass(RecognizerConfig(settle_pause_s=1.5, settle_window_s=12.0))
    second_pass.add(final(0, "Words.", 0.0, 3.0), np.zeros(3 * SAMPLE_RATE, np.float32))
    second_pass.heard(int(3.5 * SAMPLE_RATE), in_speech=False)  # a short pause
    assert second_pass.next_window(english_wanted=False, glossary=()) is None
    second_pass.heard(int(6.0 * SAMPLE_RATE), in_speech=True)  # a long pause, but speaking again
    assert second_pass.next_window(english_wanted=False, glossary=()) is None
    second_pass.heard(int(6.0 * SAMPLE_RATE), in_speech=False)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None and window.settles == 1


def test_a_final_waits_for_what_follows_it_at_most_settle_wait_s() -> None:
    """A dialogue on one track: short turns, gaps shorter than the settling pause, never a window's
    worth of speech waiting. The oldest final is settled settle_wait_s after it ended, with what was
    said after it; the newest ones lend their audio and wait."""
    config = RecognizerConfig(
        settle_pause_s=1.5, settle_window_s=8.0, settle_right_context_s=2.0, settle_wait_s=8.0
    )
    second_pass = SecondPass(config)
    turns = [
        final(0, "How are you?", 0.0, 1.5),
        final(1, "Fine, thanks.", 2.5, 3.5),
        final(2, "Any pain?", 4.5, 5.5),
        final(3, "No.", 6.5, 7.0),
        final(4, "Good.", 8.0, 8.5),
    ]
    for f in turns:
        second_pass.add(f, np.zeros(int((f.end_s - f.start_s) * SAMPLE_RATE), np.float32))
    second_pass.heard(int(9.0 * SAMPLE_RATE), in_speech=True)  # 4.5 s of speech, the oldest 7.5 s ago
    assert second_pass.next_window(english_wanted=False, glossary=()) is None
    second_pass.heard(int(9.6 * SAMPLE_RATE), in_speech=True)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None and [f.seq for f in window.finals] == [0, 1, 2, 3, 4]
    # 4.5 s of audio: the finals ending in its last 2 s (at 3.5 and 4.0 s and 4.5 s) wait.
    assert window.settles == 2
    unbounded = SecondPass(replace(config, settle_wait_s=float("inf")))
    for f in turns:
        unbounded.add(f, np.zeros(int((f.end_s - f.start_s) * SAMPLE_RATE), np.float32))
    unbounded.heard(int(9.6 * SAMPLE_RATE), in_speech=True)
    assert unbounded.next_window(english_wanted=False, glossary=()) is None


def test_words_a_cut_off_decode_heard_of_a_later_final_stay_with_that_final() -> None:
    """The decode ran into the final that follows and stopped inside it (its token limit, or Whisper
    ended early): the words it heard there are that final's, not the one settled. Given to the settled
    one, they were shown twice: there, and again when the later final settled."""
    second_pass = SecondPass(RecognizerConfig(settle_window_s=8.0, settle_right_context_s=2.0))
    spoken = [
        final(0, "Um, just light foods.", 0.0, 7.0),
        final(1, "Okay, fine. And certainly started three days ago, the symptoms.", 7.0, 18.0),
    ]
    for f in spoken:
        second_pass.add(f, np.zeros(int((f.end_s - f.start_s) * SAMPLE_RATE), np.float32))
    second_pass.heard(18 * SAMPLE_RATE, in_speech=True)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None and window.settles == 1
    cut_off = decoded("Um, just light foods.", "Okay.", "Fine.", cut_off=True)
    [settled] = second_pass.settle(window, cut_off, {})
    assert settled.replaces == (0,) and settled.text == "Um, just light foods."


def test_settle_groups_merge_only_within_the_finals_a_window_settles() -> None:
    # Mid-monologue: the newest final lends its audio as what follows and is not settled, even though
    # the sentence runs on into it.
    second_pass = SecondPass(RecognizerConfig(settle_window_s=6.0, settle_right_context_s=3.0))
    finals = [final(0, "We will start", 0.0, 4.0), final(1, "you on a new tablet", 4.0, 8.0)]
    for f in finals:
        second_pass.add(f, np.zeros(4 * SAMPLE_RATE, np.float32))
    second_pass.heard(8 * SAMPLE_RATE, in_speech=True)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None and window.settles == 1
    groups = settle_groups(window, decoded("We will start you on a new tablet"))
    assert [tuple(f.seq for f in g.finals) for g in groups] == [(0,)]


def settled_after_a_pause(second_pass: SecondPass, spoken: list[SpeechEvent], text: str) -> list[SpeechEvent]:
    """Add the finals, let the speaker pause, and settle the window that makes with `text` decoded."""
    for f in spoken:
        second_pass.add(f, np.zeros(int((f.end_s - f.start_s) * SAMPLE_RATE), np.float32))
    second_pass.heard(int((spoken[-1].end_s + 2.0) * SAMPLE_RATE), in_speech=False)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None
    return second_pass.settle(window, decoded(text), {})


def test_a_window_is_decoded_after_the_speakers_newest_settled_lines() -> None:
    second_pass = SecondPass(RecognizerConfig(settle_left_context_s=10.0))
    earlier = [final(0, "Where does it hurt?", 0.0, 2.0), final(1, "Is it worse at night?", 2.5, 5.0)]
    assert len(settled_after_a_pause(second_pass, earlier, "Where does it hurt? Is it worse at night?")) == 2
    second_pass.add(final(2, "No", 9.0, 10.0), np.ones(SAMPLE_RATE, np.float32))
    second_pass.heard(12 * SAMPLE_RATE, in_speech=False)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None
    # The settled lines' audio goes first, then the final's.
    assert [line.event.text for line in window.context] == ["Where does it hurt?", "Is it worse at night?"]
    assert len(window.task.audio) == int(4.5 * SAMPLE_RATE) + SAMPLE_RATE
    assert (
        window.task.audio[-SAMPLE_RATE:].min() == 1.0
        and window.task.audio[: int(4.5 * SAMPLE_RATE)].max() == 0.0
    )
    # Heard again, the context's words are its own and stay settled; only the final's are new.
    [settled] = second_pass.settle(window, decoded("Where does it hurt? Is it worse at night? No."), {})
    assert (settled.replaces, settled.text) == ((2,), "No.")


def test_the_left_context_keeps_to_the_windows_language_and_length() -> None:
    second_pass = SecondPass(RecognizerConfig(settle_left_context_s=5.0))
    spanish = replace(final(0, "Me duele la cabeza.", 0.0, 3.0), language="es")
    settled_after_a_pause(second_pass, [spanish], "Me duele la cabeza.")
    lines = [final(seq, f"Sentence {seq}.", 4.0 * seq, 4.0 * seq + 2.0) for seq in range(1, 5)]
    for line in lines:
        settled_after_a_pause(second_pass, [line], line.text)
    second_pass.add(final(5, "Okay.", 30.0, 31.0), np.zeros(SAMPLE_RATE, np.float32))
    second_pass.heard(33 * SAMPLE_RATE, in_speech=False)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None
    # The newest English lines, whole, reaching back at least 5 s (three lines of 2 s): the older ones
    # and the Spanish one are left out.
    assert [line.event.text for line in window.context] == ["Sentence 2.", "Sentence 3.", "Sentence 4."]
    assert second_pass.context_samples == 6 * SAMPLE_RATE
    spanish_now = replace(final(6, "Sí.", 34.0, 35.0), language="es")
    second_pass.settle(window, decoded("Sentence 3. Sentence 4. Okay."), {})
    second_pass.add(spanish_now, np.zeros(SAMPLE_RATE, np.float32))
    second_pass.heard(37 * SAMPLE_RATE, in_speech=False)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None and window.context == ()


def test_a_window_after_one_long_line_is_heard_behind_it() -> None:
    second_pass = SecondPass(RecognizerConfig(settle_left_context_s=5.0))
    long_line = final(0, "It started a week ago, after the trip, with a headache.", 0.0, 12.0)
    settled_after_a_pause(second_pass, [long_line], long_line.text)
    second_pass.add(final(1, "No", 15.0, 16.0), np.zeros(SAMPLE_RATE, np.float32))
    second_pass.heard(18 * SAMPLE_RATE, in_speech=False)
    window = second_pass.next_window(english_wanted=False, glossary=())
    # The line is longer than the context's 5 s: kept whole rather than dropped.
    assert window is not None and [line.seq for line in window.context] == [0]


def test_no_left_context_when_it_is_off() -> None:
    second_pass = SecondPass(RecognizerConfig(settle_left_context_s=0.0))
    settled_after_a_pause(second_pass, [final(0, "Where does it hurt?", 0.0, 2.0)], "Where does it hurt?")
    second_pass.add(final(1, "No", 9.0, 10.0), np.zeros(SAMPLE_RATE, np.float32))
    second_pass.heard(12 * SAMPLE_RATE, in_speech=False)
    window = second_pass.next_window(english_wanted=False, glossary=())
    assert window is not None and window.context == () and len(window.task.audio) == SAMPLE_RATE


def test_a_second_pass_given_no_time_settles_its_oldest_waiting_finals_as_they_were() -> None:
    # A saturated machine: first-pass work always comes first and the window in flight never returns.
    config = RecognizerConfig(settle_window_s=12.0)
    second_pass = SecondPass(config)
    spoken = [final(seq, f"Sentence number {seq}.", 4.0 * seq, 4.0 * seq + 4.0) for seq in range(30)]
    shed: list[SpeechEvent] = []
    window = None
    for f in spoken:
        shed += second_pass.add(f, np.zeros(4 * SAMPLE_RATE, np.float32))
        second_pass.heard(round((f.end_s + 2.0) * SAMPLE_RATE), in_speech=False)
        window = window or second_pass.next_window(english_wanted=False, glossary=())
        assert second_pass.unsettled_samples <= (29.5 + config.settle_window_s) * SAMPLE_RATE
    assert window is not None
    in_flight = [f.seq for f in window.finals]
    # The oldest finals outside the window settle first, each with its own words, and nothing twice.
    assert [e.replaces for e in shed] == [(seq,) for seq in range(len(in_flight), len(in_flight) + len(shed))]
    assert all(e.kind is SpeechEventKind.SETTLED for e in shed)
    assert all(e.text == f"Sentence number {e.replaces[0]}." for e in shed)
    # The window still settles what it holds when it comes back.
    events = second_pass.settle(window, decoded(*(f.event.text for f in window.finals)), {})
    assert [seq for e in events for seq in e.replaces] == in_flight
    assert second_pass.unsettled == 30 - len(in_flight) - len(shed)


def test_a_stream_from_a_file_waits_for_settling_instead() -> None:
    second_pass = SecondPass(RecognizerConfig(settle_window_s=12.0), shed_backlog=False)
    for seq in range(11):
        assert not second_pass.behind
        four_seconds = np.zeros(4 * SAMPLE_RATE, np.float32)
        assert second_pass.add(final(seq, "Words.", 4.0 * seq, 4.0 * seq + 4.0), four_seconds) == []
    assert second_pass.behind  # 44 s wait: push() holds the file back until a window is done


@pytest.mark.parametrize(
    ("traditional", "simplified"), [("頭髮發燒", "头发发烧"), ("醫生說你需要多喝水", "医生说你需要多喝水")]
)
def test_chinese_is_converted_both_ways(traditional: str, simplified: str) -> None:
    assert to_simplified(traditional) == simplified
    assert to_traditional(simplified) == traditional
    assert to_simplified("Take 2 tablets") == "Take 2 tablets"


# ---- the real model ----


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


async def stream_all(recognizer: SpeechRecognizer, audio: np.ndarray, **options: object) -> list[SpeechEvent]:
    """Events of `audio` pushed as fast as the stream takes it: not live, so settling keeps up."""
    stream = recognizer.open_stream(live=False, **options)  # type: ignore[arg-type]
    events, collector = collect_transcripts(stream)
    audio = np.concatenate([audio, np.zeros(2 * SAMPLE_RATE, np.float32)])
    for i in range(0, len(audio), CHUNK):
        await stream.push(audio[i : i + CHUNK])
        await asyncio.sleep(0)
    await stream.finish()
    await asyncio.wait_for(collector, timeout=300)
    return events


def check_settling(events: list[SpeechEvent]) -> list[SpeechEvent]:
    """Every final is settled exactly once, after it was emitted, by events in utterance order that
    each name contiguous finals, their own first. Returns the settled events."""
    finals_seen: list[int] = []
    settled_seqs: list[int] = []
    settled = []
    for event in events:
        if event.kind is SpeechEventKind.FINAL:
            finals_seen.append(event.utterance_seq)
        elif event.kind is SpeechEventKind.SETTLED:
            settled.append(event)
            assert event.replaces and event.replaces[0] == event.utterance_seq
            assert all(seq in finals_seen for seq in event.replaces), "settled before its final"
            assert not set(event.replaces) & set(settled_seqs), "an utterance settled twice"
            settled_seqs.extend(event.replaces)
    assert settled_seqs == finals_seen, "settled out of order, or a final never settled"
    contiguous = [finals_seen.index(e.replaces[-1]) - finals_seen.index(e.replaces[0]) for e in settled]
    assert contiguous == [len(e.replaces) - 1 for e in settled]
    return settled


@pytest.fixture(scope="module")
def recognizer(whisper_model_path: Path) -> Iterator[SpeechRecognizer]:
    # A bold first pass: 300 ms of silence ends an utterance, so JFK's sentence comes in pieces.
    recognizer = SpeechRecognizer(whisper_model_path, RecognizerConfig(silence_ms=300))
    yield recognizer
    asyncio.run(recognizer.aclose())


@pytest.mark.slow
async def test_settled_events_replace_finals_in_order_and_merge_a_split_sentence(
    recognizer: SpeechRecognizer, speech_dir: Path
) -> None:
    jfk = decode_audio(str(speech_dir / "en_jfk.flac"), sampling_rate=SAMPLE_RATE)
    events = await stream_all(recognizer, jfk, language="en")
    settled = check_settling(events)
    finals = [e for e in events if e.kind is SpeechEventKind.FINAL]
    assert len(finals) >= 3, "JFK should come in pieces at silence_ms=300"
    # "And so, my fellow Americans," does not end a sentence: its line and the next become one.
    assert any(len(e.replaces) > 1 for e in settled), [(e.replaces, e.text) for e in settled]
    reference = (
        "and so my fellow americans ask not what your country can do for you "
        "ask what you can do for your country"
    )
    assert jiwer.wer(reference, normalise(" ".join(e.text for e in settled))) <= 0.1
    assert not any(e.uncertain for e in [*finals, *settled]), "clear speech marked uncertain"


@pytest.mark.slow
async def test_unintelligible_speech_and_its_english_are_marked_uncertain(
    recognizer: SpeechRecognizer,
) -> None:
    # Speech played backwards: a voice, syllables and pauses, but no words. Whisper still writes
    # fluent sentences for it, and fluent English when asked to translate.
    spoken = audio_fixtures.espeak(
        "El paciente tiene fiebre y dolor de cabeza desde hace tres dias, y no puede dormir.", "es"
    )
    events = await stream_all(recognizer, spoken[::-1].copy(), language="es", english_wanted=True)
    settled = check_settling(events)
    finals = [e for e in events if e.kind is SpeechEventKind.FINAL]
    shown = [e for e in [*finals, *settled] if e.text]
    assert shown, "nothing was written for the reversed speech: the test shows nothing"
    assert all(e.uncertain for e in shown), [(e.kind, e.confidence) for e in shown]
    translated = [e for e in shown if e.english]
    assert translated and all(e.english_uncertain for e in translated)


@pytest.mark.slow
async def test_settling_gives_back_words_a_short_final_lost(
    whisper_model_path: Path, speech_dir: Path
) -> None:
    """A real case from the dev consultation: the patient's 3.6 s answer at 1:04, "No, no blood, yeah,
    just watery and loose stool.", decoded alone as a final in Whisper's full 30 s window loses
    "watery" and "stool" (Whisper base: "...just water it and lose soul."). Decoded again with the
    speech before and after it in the window, "stool" comes back. Which finals share a window depends
    on how the first pass and the second pass interleave (a race between threads, here as in a call),
    so the settled line varies from run to run ("just water and lose stool.", "just water it and lose
    stools."); it is never worse than the final. The settled error rate over whole consultations is
    bench/asr_stream.py's to measure."""
    reference = normalise("No, no blood, yeah, just watery and loose stool.")
    audio = decode_audio(
        str(speech_dir / "en_synthetic_consultation_day1_01.flac"), sampling_rate=SAMPLE_RATE
    )[: 70 * SAMPLE_RATE]
    recognizer = SpeechRecognizer(whisper_model_path, RecognizerConfig(short_final_windows=False))
    try:
        events = await stream_all(recognizer, audio, language="en")
    finally:
        await recognizer.aclose()
    settled = check_settling(events)
    [answer] = [e for e in events if e.kind is SpeechEventKind.FINAL and "no blood" in normalise(e.text)]
    [settling] = [e for e in settled if answer.utterance_seq in e.replaces]
    assert settling.replaces == (answer.utterance_seq,), settling.replaces
    errors_final = jiwer.process_words(reference, normalise(answer.text))
    errors_settled = jiwer.process_words(reference, normalise(settling.text))
    final_errors = errors_final.substitutions + errors_final.deletions + errors_final.insertions
    settled_errors = errors_settled.substitutions + errors_settled.deletions + errors_settled.insertions
    assert "stool" not in normalise(answer.text), answer.text  # what the final lost, as described above
    assert "stool" in normalise(settling.text), (answer.text, settling.text)
    assert settled_errors <= final_errors, (answer.text, settling.text)
