"""Fast tests of asr/ pieces that need no Whisper model and no dev data."""

from __future__ import annotations

import numpy as np
import pytest
from faster_whisper.vad import get_vad_model

from asr import RecognizerError
from asr.agreement import LocalAgreement
from asr.config import SAMPLE_RATE, RecognizerConfig
from asr.context import SpeakerContext
from asr.hallucinations import MIN_LOOP_REPEATS, is_hallucination, trim_repetition
from asr.segmenter import UtteranceSegmenter
from asr.vad import WINDOW, StreamingVad


class ScriptedVad(StreamingVad):
    """Speech probability from a function of stream time, instead of the model."""

    def __init__(self, speech_at: list[tuple[float, float]]) -> None:
        self._speech_at = speech_at
        self._position = 0
        self._remainder = 0

    def process(self, samples: np.ndarray) -> np.ndarray:
        total = self._remainder + len(samples)
        n = total // WINDOW
        self._remainder = total % WINDOW
        probs = []
        for _ in range(n):
            t = self._position / SAMPLE_RATE
            probs.append(0.9 if any(a <= t < b for a, b in self._speech_at) else 0.05)
            self._position += WINDOW
        return np.asarray(probs, dtype=np.float32)


def feed_all(segmenter: UtteranceSegmenter, seconds: float, chunk: int = 320) -> list:
    audio = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    segments = []
    for i in range(0, len(audio), chunk):
        segments.extend(segmenter.feed(audio[i : i + chunk]))
    return segments


def test_streaming_vad_matches_offline_pass() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(SAMPLE_RATE * 3) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 1) + 0.01 * rng.standard_normal(len(t))).astype(
        np.float32
    )
    audio = audio[: len(audio) // WINDOW * WINDOW]
    offline = get_vad_model()(audio).reshape(-1)
    vad = StreamingVad()
    # Odd chunk sizes on purpose: windows straddle push boundaries.
    streamed = np.concatenate([vad.process(audio[i : i + 333]) for i in range(0, len(audio), 333)])
    np.testing.assert_allclose(streamed, offline, atol=1e-5)


def test_utterance_ends_after_silence_ms() -> None:
    config = RecognizerConfig(silence_ms=600, partial_interval_s=100.0)
    segmenter = UtteranceSegmenter(config, vad=ScriptedVad([(1.0, 3.0)]))
    finals = [s for s in feed_all(segmenter, 5.0) if s.final and not s.tentative]
    assert len(finals) == 1
    assert finals[0].start_sample / SAMPLE_RATE == pytest.approx(1.0, abs=0.05)
    assert finals[0].end_sample / SAMPLE_RATE == pytest.approx(3.0, abs=0.05)
    # Leading and trailing pads keep soft onsets and final consonants.
    assert len(finals[0].audio) / SAMPLE_RATE == pytest.approx(2.6, abs=0.1)


def test_a_tentative_final_comes_once_the_pad_of_silence_has_passed() -> None:
    # Speech 1-3 s, a 0.4 s pause (longer than the pad, shorter than silence_ms), speech 3.4-5 s.
    config = RecognizerConfig(silence_ms=600, partial_interval_s=100.0)
    segmenter = UtteranceSegmenter(config, vad=ScriptedVad([(1.0, 3.0), (3.4, 5.0)]))
    segments = feed_all(segmenter, 7.0)
    tentative = [s for s in segments if s.tentative]
    [final] = [s for s in segments if s.final and not s.tentative]
    # One in the short pause (speech went on: it is not the final), one in the final silence.
    assert len(tentative) == 2 and all(s.seq == final.seq for s in tentative)
    assert tentative[0].end_sample / SAMPLE_RATE == pytest.approx(3.0, abs=0.05)
    assert segments.index(tentative[0]) < segments.index(tentative[1]) < segments.index(final)
    # The last is the final's exact utterance, offered 0.3 s before the final itself.
    last = tentative[1]
    assert (last.start_sample, last.end_sample) == (final.start_sample, final.end_sample)
    np.testing.assert_array_equal(last.audio, final.audio)


def test_no_tentative_finals_when_off() -> None:
    segmenter = UtteranceSegmenter(RecognizerConfig(speculative_finals=False), vad=ScriptedVad([(1.0, 3.0)]))
    segments = feed_all(segmenter, 5.0)
    assert [s.tentative for s in segments if s.final] == [False]


def test_short_blips_are_not_utterances() -> None:
    segmenter = UtteranceSegmenter(RecognizerConfig(), vad=ScriptedVad([(1.0, 1.1)]))
    assert feed_all(segmenter, 3.0) == []


def test_monologue_is_cut_at_max_utterance_s() -> None:
    config = RecognizerConfig(max_utterance_s=15.0, partial_interval_s=100.0)
    segmenter = UtteranceSegmenter(config, vad=ScriptedVad([(0.0, 9.0), (9.2, 40.0)]))
    finals = [s for s in feed_all(segmenter, 32.0) if s.final]
    assert len(finals) >= 2
    assert all(len(s.audio) <= 15.0 * SAMPLE_RATE for s in finals)
    # The cut lands in the brief pause, not at an arbitrary point.
    assert finals[0].end_sample / SAMPLE_RATE == pytest.approx(9.1, abs=0.1)
    assert [s.seq for s in finals] == list(range(len(finals)))


def test_partials_are_rate_limited_and_flush_finalises() -> None:
    config = RecognizerConfig(partial_interval_s=1.0)
    segmenter = UtteranceSegmenter(config, vad=ScriptedVad([(0.5, 10.0)]))
    segments = feed_all(segmenter, 4.0)
    partials = [s for s in segments if not s.final]
    assert 2 <= len(partials) <= 4
    flushed = segmenter.flush()
    assert len(flushed) == 1 and flushed[0].final and flushed[0].seq == partials[-1].seq


def test_a_lagging_feed_yields_one_partial() -> None:
    segmenter = UtteranceSegmenter(RecognizerConfig(), vad=ScriptedVad([(0.0, 30.0)]))
    segments = segmenter.feed(np.zeros(8 * SAMPLE_RATE, dtype=np.float32))
    assert [s.final for s in segments] == [False]


def test_local_agreement_keeps_its_promises() -> None:
    agreement = LocalAgreement("en")
    assert agreement.update("And so my") == ("And so my", 0)
    text, stable = agreement.update("And so my fellow America")
    assert text == "And so my fellow America" and text[:stable] == "And so my"
    # A later hypothesis rewriting promised words does not change them.
    text, stable = agreement.update("And sew my fellow Americans ask")
    assert text.startswith("And so my ")
    assert stable >= len("And so my ")


@pytest.mark.parametrize(
    ("text", "seconds", "dropped"),
    [
        ("Thank you.", 1.0, True),
        ("Thanks for watching!", 2.0, True),
        ("Thank you.", 8.0, False),
        ("Yes.", 1.0, False),
        ("Okay.", 0.8, False),  # a patient's commonest answer
    ],
)
def test_boilerplate_is_dropped_only_on_short_utterances(text: str, seconds: float, dropped: bool) -> None:
    assert is_hallucination(text, seconds) is dropped


def test_stable_chars_never_shrink() -> None:
    agreement = LocalAgreement("en")
    hypotheses = ["And so", "And so my", "And so my fellow", "And so", "And sew my fellow Americans", "And"]
    stables = [agreement.update(h)[1] for h in hypotheses]
    assert stables == sorted(stables) and stables[-1] >= len("And so my")
    text, stable = agreement.update("")
    assert text.startswith("And so my") and stable <= len(text)


@pytest.mark.parametrize(
    ("language", "hypotheses", "stable_prefix"),
    [
        ("zh", ["我们今天", "我们今天讨论", "我们今天讨论你的"], "我们今天讨论"),
        ("ja", ["今日は", "今日はいい天", "今日はいい天気です"], "今日はいい天"),
        ("th", ["สวัสดี", "สวัสดีครับ", "สวัสดีครับหมอ"], "สวัสดีครับ"),
    ],
)
def test_agreement_is_per_character_without_spaces(
    language: str, hypotheses: list[str], stable_prefix: str
) -> None:
    agreement = LocalAgreement(language)
    for hypothesis in hypotheses:
        text, stable = agreement.update(hypothesis)
    assert text == hypotheses[-1]
    assert text[:stable] == stable_prefix


@pytest.mark.parametrize(
    "text",
    [
        "Thanks for watching!",
        "Thank you.",
        "Subtitles by the Amara.org community",
        "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
        "字幕由Amara.org社区提供",
        "ご視聴ありがとうございました。",
        "Продолжение следует...",
        "Субтитры сделал DimaTorzok",
        "Gracias por ver el video.",
        "Subtítulos realizados por la comunidad de Amara.org",
        "Sous-titres réalisés para la communauté d'Amara.org",
        "ترجمة نانسي قنقر",
        "اشتركوا في القناة",
        "Altyazı M.K.",
        "İzlediğiniz için teşekkürler.",
        "Hãy subscribe cho kênh",
        "Cảm ơn các bạn đã theo dõi!",
        "Terima kasih telah menonton.",
        "ขอบคุณที่รับชม",
    ],
)
def test_boilerplate_in_every_language_is_dropped(text: str) -> None:
    assert is_hallucination(text, 2.0)
    # Case, punctuation and spacing variants Whisper produces are caught too.
    assert is_hallucination(f"  {text.upper()}!! ", 2.0)


def test_credits_are_dropped_even_in_long_utterances() -> None:
    assert is_hallucination("Sous-titres réalisés par la communauté d'Amara.org", 12.0)
    assert not is_hallucination("Thank you.", 12.0)
    assert not is_hallucination("Thank you for coming in today, doctor.", 2.0)


@pytest.mark.parametrize(
    ("text", "trimmed"),
    [
        ("petite petite petite petite petite petite petite", "petite"),
        ("Je suis petite, petite, petite, petite, petite.", "Je suis petite."),
        ("I feel the pain I feel the pain I feel the pain I feel the pain here", "I feel the pain here"),
        ("我很好我很好我很好我很好我很好", "我很好"),
        # A loop inside one word, as Whisper wrote it once on the dev consultation.
        ("It was M.M.F.M.F.M.F.M.F.M.F.M.F.M.F.M.F.M.F.", "It was M.M.F."),
        # Natural repetition stays: up to MIN_LOOP_REPEATS - 1 times, and laughter in unspaced scripts.
        ("No, no, no, I never smoked.", "No, no, no, I never smoked."),
        ("哈哈哈哈", "哈哈哈哈"),
        ("Hahaha, mmmm, www.example.org, 1000000 units.", "Hahaha, mmmm, www.example.org, 1000000 units."),
        ("It hurts here and here and here.", "It hurts here and here and here."),
    ],
)
def test_repetition_loops_are_trimmed(text: str, trimmed: str) -> None:
    assert MIN_LOOP_REPEATS == 4
    assert trim_repetition(text) == trimmed


def test_auto_device_and_default_precision() -> None:
    import ctranslate2

    from asr.recognizer import resolve_device

    expected = ("cuda", "float16") if ctranslate2.get_cuda_device_count() > 0 else ("cpu", "int8")
    assert resolve_device("auto", "default") == expected
    assert resolve_device("cpu", "default") == ("cpu", "int8")
    assert resolve_device("cpu", "int8_float32") == ("cpu", "int8_float32")
    with pytest.raises(RecognizerError, match="unknown ASR device"):
        resolve_device("tpu", "default")


def test_missing_cuda_library_is_explained() -> None:
    from asr.recognizer import _explain_cuda_failure

    error = _explain_cuda_failure(RuntimeError("Library libcublas.so.12 is not found or cannot be loaded"))
    assert isinstance(error, RecognizerError)
    assert "libcublas.so.12" in str(error) and "cuBLAS" in str(error) and "cuDNN 9" in str(error)
    assert _explain_cuda_failure(RuntimeError("unsupported model")) is None


def test_speaker_context_is_bounded_and_keeps_to_one_language() -> None:
    second = np.ones(SAMPLE_RATE, dtype=np.float32)
    context = SpeakerContext(max_samples=3 * SAMPLE_RATE)
    for i in range(5):
        context.remember(i, second * i, f"s{i}", "en", None)
    context.remember(5, second, "", "en", None)  # nothing was said: not context
    assert context.samples == 3 * SAMPLE_RATE
    window = context.window(6, "en", 10 * SAMPLE_RATE, english_wanted=False)
    assert window is not None and window.text == "s2 s3 s4" and len(window.audio) == 3 * SAMPLE_RATE
    assert window.audio[0] == 2 and window.audio[-1] == 4  # oldest first, as spoken
    # Only what fits the room left in the decoding window, newest first.
    narrow = context.window(6, "en", int(1.5 * SAMPLE_RATE), english_wanted=False)
    assert narrow is not None and narrow.text == "s4"
    assert context.window(6, "fr", 10 * SAMPLE_RATE, english_wanted=False) is None
    # English prefixes are needed for translation: finals without one end the window.
    assert context.window(6, "en", 10 * SAMPLE_RATE, english_wanted=True) is None
    context.remember(6, second, "bonjour", "fr", "hello")
    assert context.window(7, "en", 10 * SAMPLE_RATE, english_wanted=False) is None
    french = context.window(7, "fr", 10 * SAMPLE_RATE, english_wanted=True)
    assert french is not None and (french.text, french.english) == ("bonjour", "hello")


def test_an_early_decode_of_an_utterance_is_replaced_by_its_final_and_never_its_context() -> None:
    # Utterance 1 was decoded while its closing silence ran, then speech resumed: its final, decoded
    # later over more audio, must not sit behind its own first words, and replaces them.
    second = np.ones(SAMPLE_RATE, dtype=np.float32)
    context = SpeakerContext(max_samples=10 * SAMPLE_RATE)
    context.remember(0, second, "Good morning.", "en", None)
    context.remember(1, second, "I have had", "en", None)
    window = context.window(1, "en", 10 * SAMPLE_RATE, english_wanted=False)
    assert window is not None and window.text == "Good morning."
    context.remember(1, np.tile(second, 3), "I have had a cough for a week.", "en", None)
    assert context.samples == 4 * SAMPLE_RATE
    window = context.window(2, "en", 10 * SAMPLE_RATE, english_wanted=False)
    assert window is not None and window.text == "Good morning. I have had a cough for a week."
    # A final judged to be no speech after all takes its early decode out of the context.
    context.remember(2, second, "Thank", "en", None)
    context.remember(2, second, "", "en", None)
    assert context.samples == 4 * SAMPLE_RATE
