"""How the benchmarks score: word errors charged to the reference turn they fall in, the bootstrap
interval that says how far a relative WER on the dev set can be trusted, and the extra consultations
read aloud to narrow it."""

from __future__ import annotations

import shutil
from pathlib import Path

import jiwer
import numpy as np
import pytest

from bench.common import relative_error_interval, split_reference_by_utterance, word_errors_per_unit
from bench.consultations import ConsultationError, make_consultations, transcript_turns

TURNS = ["the patient has had diarrhoea for three days", "any blood in the stools", "no"]


def test_each_error_is_charged_to_its_turn_and_they_add_up_to_the_word_error_count() -> None:
    # "had" -> "hat" (turn 0), "blood" deleted (turn 1), "um" inserted before "no" (turn 2).
    hypothesis = "the patient has hat diarrhoea for three days any in the stools um no"
    errors = word_errors_per_unit(TURNS, hypothesis)
    assert errors == [1, 1, 1]
    reference = " ".join(TURNS)
    assert sum(errors) == round(jiwer.wer(reference, hypothesis) * len(reference.split()))


def test_words_after_the_last_turn_and_a_silent_hypothesis_are_charged_too() -> None:
    assert word_errors_per_unit(TURNS, " ".join(TURNS) + " thank you") == [0, 0, 2]
    assert word_errors_per_unit(TURNS, "") == [8, 5, 1]


def test_the_interval_brackets_the_ratio_and_narrows_with_more_turns() -> None:
    # A third more errors than the baseline (4 against 3 in every four turns), but not in the same
    # turns, so resampling turns moves the ratio.
    ours, theirs = [3, 0, 1, 0] * 10, [2, 0, 0, 1] * 10
    low, high = relative_error_interval(ours, theirs) or (0.0, 0.0)
    assert low < 4 / 3 - 1 < high
    low_many, high_many = relative_error_interval(ours * 10, theirs * 10) or (0.0, 0.0)
    assert high_many - low_many < (high - low) / 2
    assert low_many < 4 / 3 - 1 < high_many


def test_no_interval_without_baseline_errors() -> None:
    assert relative_error_interval([1, 2, 0], [0, 0, 0]) is None
    # One baseline error in a hundred turns: most resamples leave the ratio undefined.
    assert relative_error_interval([1] * 100, [1] + [0] * 99) is None
    assert relative_error_interval([], []) is None


def test_identical_errors_give_a_zero_width_interval_at_zero() -> None:
    same = [1, 0, 2, 0, 1] * 20
    assert relative_error_interval(same, same) == (0.0, 0.0)


def test_consultation_transcripts_lose_their_markup_and_wordless_turns(tmp_path: Path) -> None:
    transcript = tmp_path / "day9_consultation01.tsv"
    transcript.write_text(
        "start\tend\tspeaker\ttext\n"
        "0.0\t1.0\tdoctor\t<UNSURE>Hello</UNSURE> there, <UNIN/> how are you?\n"
        "1.0\t2.0\tpatient\t<UNIN/>\n"
        "2.0\t3.0\tpatient\tNot great, um, my chest hurts.\n",
        encoding="utf-8",
    )
    assert transcript_turns(transcript) == [
        ("doctor", "Hello there, how are you?"),
        ("patient", "Not great, um, my chest hurts."),
    ]


@pytest.fixture
def two_turn_transcripts(tmp_path: Path) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    transcripts = tmp_path / "primock57"
    transcripts.mkdir()
    (transcripts / "day1_consultation01.tsv").write_text("start\tend\tspeaker\ttext\n", encoding="utf-8")
    (transcripts / "day9_consultation01.tsv").write_text(
        "start\tend\tspeaker\ttext\n0.0\t1.0\tdoctor\tGood morning.\n1.0\t2.0\tpatient\tMorning, doctor.\n",
        encoding="utf-8",
    )
    return transcripts


def test_a_consultation_is_read_aloud_once_and_reused(two_turn_transcripts: Path, tmp_path: Path) -> None:
    from faster_whisper import decode_audio

    (made,) = make_consultations(two_turn_transcripts, tmp_path / "cache", 1)  # the dev set's is skipped
    assert made.name == "primock57_day9_consultation01"
    assert made.turns == ("Good morning.", "Morning, doctor.")
    audio = decode_audio(str(made.audio), sampling_rate=16_000)
    assert 2.0 < len(audio) / 16_000 < 10.0 and float(abs(audio).max()) > 0.1
    written = made.audio.stat().st_mtime_ns
    assert (
        make_consultations(two_turn_transcripts, tmp_path / "cache", 1)[0].audio.stat().st_mtime_ns == written
    )
    with pytest.raises(ConsultationError, match="only 1"):
        make_consultations(two_turn_transcripts, tmp_path / "cache", 2)


def test_per_speaker_tracks_add_up_to_the_mixed_one(two_turn_transcripts: Path, tmp_path: Path) -> None:
    """One microphone per participant, as in a call: each track holds its speaker's turns only, on the
    conversation's clock."""
    from faster_whisper import decode_audio

    (mixed,) = make_consultations(two_turn_transcripts, tmp_path / "cache", 1)
    doctor, patient = make_consultations(two_turn_transcripts, tmp_path / "cache", 1, per_speaker=True)
    assert (doctor.name, doctor.speaker, doctor.turns) == (
        "primock57_day9_consultation01.doctor",
        "doctor",
        ("Good morning.",),
    )
    assert (patient.speaker, patient.turns) == ("patient", ("Morning, doctor.",))
    audio = {c.speaker: decode_audio(str(c.audio), sampling_rate=16_000) for c in (mixed, doctor, patient)}
    assert len(audio["doctor"]) == len(audio["patient"]) == len(audio[None])
    assert not np.any((audio["doctor"] != 0) & (audio["patient"] != 0))  # never both at once
    np.testing.assert_array_equal(audio["doctor"] + audio["patient"], audio[None])
    # The doctor speaks first: their track's sound comes before the patient's.
    assert np.flatnonzero(audio["doctor"])[-1] < np.flatnonzero(audio["patient"])[0]


def test_the_reference_is_cut_where_the_utterances_fall() -> None:
    utterances = ["the patient has hat diarrhoea", "for three days any", "in the stools um no"]
    pieces = split_reference_by_utterance(" ".join(TURNS), utterances)
    # "blood", left out, goes with the utterance before it; "um", inserted, cuts nothing.
    assert pieces == [
        (0, "the patient has had diarrhoea"),
        (1, "for three days any blood"),
        (2, "in the stools no"),
    ]
    assert split_reference_by_utterance("a b", []) == [(0, "a b")]
    assert split_reference_by_utterance("", ["a"]) == []
