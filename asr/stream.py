"""One speaker's audio in, speech events out: partials, preliminary finals, finals, settled text.

The asyncio side only buffers audio and hands it over. Segmenting (Silero VAD) and decoding, batched
with other streams, run on the recogniser's threads. Segmenting is pipelined with
decoding: the next audio is cut while earlier utterances are still being decoded, so a final is queued
the moment its utterance ends, and a partial still waiting when a newer one arrives is skipped. A final
is even queued before its utterance ends: as a tentative final once its closing silence has lasted
the trailing pad; if the silence lasts to silence_ms that decode is the final's, else it is dropped.
When that decode is done while the silence still runs, it is emitted as a PRELIMINARY_FINAL.

Finals then wait for the second pass (asr/settle.py), which decodes them again together and emits
SETTLED events that replace them. Events come out in this order: an utterance's partials, at most one
preliminary final, its final, then (later, possibly after other utterances' events) the settled event
that replaces it, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from asr.agreement import LocalAgreement
from asr.config import SAMPLE_RATE, RecognizerConfig, SpeechEvent, SpeechEventKind
from asr.context import SpeakerContext
from asr.decoder import Decoded, DecodeTask, WindowDecoded
from asr.scheduler import DecodeResult, DecodeScheduler
from asr.segmenter import Segment, UtteranceSegmenter
from asr.settle import SecondPass, Window
from asr.vad import WINDOW
from protocol.privacy import describe_exception

log = logging.getLogger(__name__)


class StreamFinishedError(RuntimeError):
    """push() after finish(), or after the stream failed."""


@dataclass(frozen=True)
class _Handover:
    """One pump step: what the segmenter made of a chunk of audio, and that chunk's size."""

    # Each decode with the time.time() its segment's deciding audio (Segment.decided_sample) was pushed.
    requests: list[tuple[Segment, Future[DecodeResult | None], float]]
    samples: int


_END = object()


class RecognitionStream:
    """Push audio, iterate speech events. Create with SpeechRecognizer.open_stream()."""

    def __init__(
        self,
        scheduler: DecodeScheduler,
        config: RecognizerConfig,
        *,
        language: str | None,
        allowed_languages: frozenset[str] | None,
        english_wanted: bool,
        glossary: Sequence[str],
        live: bool,
        on_closed: Callable[[RecognitionStream], None],
        prepare: Callable[..., Future[Any]],
    ) -> None:
        """`prepare(fn, *args)` runs fn on one of the recogniser's threads (VAD and segmenting)."""
        self.english_wanted = english_wanted  # read per request, so listeners joining take effect at once
        self.glossary = glossary
        self._scheduler = scheduler
        self._stream_id = scheduler.open_stream()
        self._config = config
        self._language = language
        # The server narrows or widens this as people with other languages join or leave the room.
        self.allowed_languages = allowed_languages
        self._prepare = prepare
        self._segmenter = UtteranceSegmenter(config)  # only touched by one prepare() job at a time
        self._agreement: LocalAgreement | None = None
        self._agreement_seq = -1
        self._tentative: tuple[Segment, Future[DecodeResult | None]] | None = None
        self._live = live
        self._second_pass = SecondPass(config, shed_backlog=live) if config.second_pass else None
        self._settling: Window | None = None  # the window being decoded
        self._handovers_done = False  # every final has been emitted: the second pass may finish up
        self._window_done = asyncio.Event()
        self._context = SpeakerContext(int(config.context_s * SAMPLE_RATE))  # the scheduler thread's
        self._max_queued = max(1, int(config.max_queued_s * SAMPLE_RATE))
        self._on_closed = on_closed
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._in_flight_samples = 0
        self._pushed_samples = 0
        # (samples pushed in all once this push was in, time.time() of the push) for audio the
        # segmenter has not passed yet: when a segment's deciding audio arrived, however late the
        # segmenter (queued behind a decode on CPU) got to it.
        self._arrivals: deque[tuple[int, float]] = deque()
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        # Bounded by back-pressure: handovers hold audio counted in _in_flight_samples.
        self._handovers: asyncio.Queue[object] = asyncio.Queue()
        # Unbounded, but filled at most one partial per partial_interval_s of audio plus a preliminary
        # final, a final and a settled event per utterance, so it grows only with audio that push()
        # already bounded.
        self._out: asyncio.Queue[object] = asyncio.Queue()
        self._finishing = False
        self._failed: BaseException | None = None
        self._pump_task: asyncio.Task[None] | None = None

    @property
    def glossary(self) -> tuple[str, ...]:
        """Terms recognition is biased towards (the room glossary's `words`); settable at any time."""
        return self._glossary

    @glossary.setter
    def glossary(self, terms: Sequence[str]) -> None:
        self._glossary = tuple(t.strip() for t in terms if t.strip())

    @property
    def queued_s(self) -> float:
        """Audio accepted by push() and not yet fully recognised, in seconds."""
        return (self._pending_samples + self._in_flight_samples) / SAMPLE_RATE

    @property
    def pushed_s(self) -> float:
        return self._pushed_samples / SAMPLE_RATE

    def debug_sizes(self) -> dict[str, int]:
        """Sizes of everything this stream buffers, for tests and diagnostics of long sessions."""
        return {
            "pending_samples": self._pending_samples,
            "in_flight_samples": self._in_flight_samples,
            "handovers": self._handovers.qsize(),
            "out": self._out.qsize(),
            "agreement_units": self._agreement.size if self._agreement is not None else 0,
            "context_samples": self._context.samples,
            "unsettled_finals": self._second_pass.unsettled if self._second_pass else 0,
            "unsettled_samples": self._second_pass.unsettled_samples if self._second_pass else 0,
            # The window being decoded holds a copy of its finals' audio.
            "settling_samples": len(self._settling.task.audio) if self._settling else 0,
            "settled_context_samples": self._second_pass.context_samples if self._second_pass else 0,
            "arrivals": len(self._arrivals),
            **{f"segmenter_{k}": v for k, v in self._segmenter.debug_sizes().items()},
        }

    async def push(self, samples: np.ndarray) -> None:
        """Queue float32 mono 16 kHz audio; waits while more than max_queued_s is unprocessed (and, not
        live, while settling is behind)."""
        self._check_open()
        self._ensure_pump()
        while self._pending_samples + self._in_flight_samples >= self._max_queued or (
            not self._live and self._second_pass is not None and self._second_pass.behind
        ):
            self._space.clear()
            await self._space.wait()
            self._check_open()
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._pending.append(chunk)
        self._pending_samples += len(chunk)
        self._pushed_samples += len(chunk)
        self._arrivals.append((self._pushed_samples, time.time()))
        self._wake.set()

    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[SpeechEvent]:
        self._ensure_pump()
        while True:
            item = await self._out.get()
            if item is _END:
                # Leave the marker for any other iterator, and for repeated iteration.
                self._out.put_nowait(_END)
                return
            assert isinstance(item, SpeechEvent)
            yield item

    async def finish(self) -> None:
        """Finalise speech in progress, emit its final, settle every final, then end the iteration.
        Idempotent."""
        self._finishing = True
        self._wake.set()
        self._space.set()
        task = self._ensure_pump()
        await asyncio.shield(task)

    def _check_open(self) -> None:
        if self._failed is not None:
            raise StreamFinishedError("recognition stream failed") from self._failed
        if self._finishing:
            raise StreamFinishedError("recognition stream is finished")

    def _ensure_pump(self) -> asyncio.Task[None]:
        if self._pump_task is None:
            self._pump_task = asyncio.get_running_loop().create_task(self._run(), name="asr-stream")
        return self._pump_task

    async def _run(self) -> None:
        emitter = asyncio.get_running_loop().create_task(self._emit(), name="asr-stream-emit")
        try:
            await self._pump()
            self._handovers.put_nowait(_END)
            await emitter
            await self._settle_the_rest()
        except Exception as exc:
            log.error("recognition stream failed: %s", describe_exception(exc))
            self._failed = exc
        finally:
            emitter.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await emitter
            self._finishing = True
            self._space.set()
            self._out.put_nowait(_END)
            self._scheduler.close_stream(self._stream_id)
            self._on_closed(self)

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._failed is not None:
                raise self._failed
            finishing = self._finishing
            chunk = np.concatenate(self._pending) if self._pending else np.zeros(0, dtype=np.float32)
            self._pending.clear()
            self._in_flight_samples += self._pending_samples
            self._pending_samples = 0
            segments = await asyncio.wrap_future(self._prepare(self._segment, chunk, finishing))
            if self._second_pass is not None:
                self._second_pass.heard(self._segmenter.position, self._segmenter.in_speech)
                self._settle_if_due()
            requests = []
            for segment in segments:
                heard_at = self._arrival_of(segment.decided_sample - 1)
                request = self._request(segment)
                if request is not None:
                    requests.append((*request, heard_at))
            self._forget_arrivals(self._pushed_samples - self._pending_samples - WINDOW)
            self._handovers.put_nowait(_Handover(requests, len(chunk)))
            if finishing:
                return

    def _arrival_of(self, sample: int) -> float:
        """When the push holding stream position `sample` arrived (now, if it is not recorded)."""
        for pushed, at in self._arrivals:
            if pushed > sample:
                return at
        return self._arrivals[-1][1] if self._arrivals else time.time()

    def _forget_arrivals(self, segmented: int) -> None:
        """Drop pushes wholly before `segmented`: no later segment can be decided by them. The newest
        push is kept, for segments decided at the very end of the audio."""
        while len(self._arrivals) > 1 and self._arrivals[0][0] <= segmented:
            self._arrivals.popleft()

    def _segment(self, samples: np.ndarray, finishing: bool) -> list[Segment]:
        segments = self._segmenter.feed(samples) if samples.size else []
        if finishing:
            # A partial for audio that is about to be finalised would be stale on arrival.
            segments = [s for s in segments if s.final] + self._segmenter.flush()
        return segments

    def _request(self, segment: Segment) -> tuple[Segment, Future[DecodeResult | None]] | None:
        """Submit a segment's decode; a tentative final's result waits until its final confirms it."""
        tentative, self._tentative = self._tentative, None
        if segment.tentative:
            future = self._scheduler.submit(self._stream_id, self._task(segment), tentative=True)
            self._tentative = (segment, future)
            loop = asyncio.get_running_loop()

            def decoded(done: Future[DecodeResult | None]) -> None:  # on the scheduler's thread
                with contextlib.suppress(RuntimeError):  # the loop closed at shut-down
                    loop.call_soon_threadsafe(self._tentative_decoded, segment, done)

            future.add_done_callback(decoded)
            return None
        if tentative is not None and segment.final and _same_utterance(tentative[0], segment):
            self._scheduler.confirm(self._stream_id, tentative[1])
            return segment, tentative[1]
        # Anything else means speech went on: this submission supersedes the tentative decode.
        return segment, self._scheduler.submit(self._stream_id, self._task(segment))

    def _tentative_decoded(self, segment: Segment, future: Future[DecodeResult | None]) -> None:
        """The likely final is decoded while the closing silence still runs: emit it as a preliminary
        final, so slow work on it (translation) can start before the final is certain."""
        if self._tentative is None or self._tentative[1] is not future:
            return  # confirmed (the final is already on its way) or superseded (speech went on)
        if future.cancelled() or future.exception() is not None:
            return
        result = future.result()
        if result is None or not isinstance(result.decoded, Decoded) or not result.decoded.text:
            return
        decoded = result.decoded
        # Built as its final will be (_event), so the two compare equal word for word.
        timings = {"queued": result.queued_at, "recognized": result.recognized_at}
        self._out.put_nowait(
            _event_of(
                SpeechEventKind.PRELIMINARY_FINAL, segment, decoded, decoded.text, len(decoded.text), timings
            )
        )

    def _task(self, segment: Segment) -> DecodeTask:
        return DecodeTask(
            audio=segment.audio,
            final=segment.final,
            language=self._language,
            allowed_languages=self.allowed_languages,
            english_wanted=self.english_wanted and segment.final,
            glossary=self._glossary,
            context=self._context if segment.final else None,
            utterance_seq=segment.seq,
        )

    async def _emit(self) -> None:
        """Await decodes in submission order, so transcripts come out in the order speech went in."""
        try:
            while True:
                handover = await self._handovers.get()
                if handover is _END:
                    return
                assert isinstance(handover, _Handover)
                for segment, future, heard_at in handover.requests:
                    result = await asyncio.wrap_future(future)
                    if result is not None:
                        event = self._event(segment, result, heard_at)
                        if event is not None:
                            self._out.put_nowait(event)
                            if event.kind is SpeechEventKind.FINAL and self._second_pass is not None:
                                shed = self._second_pass.add(event, segment.audio)
                                if shed:
                                    log.info("second pass behind: %d finals settled unrevised", len(shed))
                                for settled in shed:
                                    self._out.put_nowait(settled)
                                self._settle_if_due()
                self._in_flight_samples -= handover.samples
                self._space.set()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._failed = exc
                self._wake.set()
            raise

    def _settle_if_due(self, *, finishing: bool = False) -> None:
        """Submit the second pass's next window, if one is due and none is being decoded."""
        if self._second_pass is None:
            return
        window = self._second_pass.next_window(
            english_wanted=self.english_wanted, glossary=self._glossary, finishing=finishing
        )
        if window is None:
            return
        future = self._scheduler.submit_second_pass(self._stream_id, window.task)
        self._settling = window
        loop = asyncio.get_running_loop()

        def decoded(done: Future[DecodeResult | None]) -> None:  # on the scheduler's thread
            with contextlib.suppress(RuntimeError):  # the loop closed at shut-down
                loop.call_soon_threadsafe(self._settled, window, done)

        future.add_done_callback(decoded)

    def _settled(self, window: Window, future: Future[DecodeResult | None]) -> None:
        assert self._second_pass is not None
        self._settling = None
        self._window_done.set()
        self._space.set()
        error = None if future.cancelled() else future.exception()
        if error is not None:  # the stream fails, as when a first-pass decode fails
            self._failed = error
            self._wake.set()
            return
        result = None if future.cancelled() else future.result()
        if result is None or not isinstance(result.decoded, WindowDecoded):
            # Second-pass requests are never superseded: this is a decoder that does not do windows.
            self._failed = RuntimeError("a second-pass window came back without a window's result")
            self._wake.set()
            return
        timings = {"queued": result.queued_at, "recognized": result.recognized_at}
        for event in self._second_pass.settle(window, result.decoded, timings):
            log.debug("settled utterances %s: %d chars", ",".join(map(str, event.replaces)), len(event.text))
            self._out.put_nowait(event)
        self._settle_if_due(finishing=self._finishing and self._handovers_done)

    async def _settle_the_rest(self) -> None:
        """The stream is over and every final emitted: settle them all before the iteration ends."""
        self._handovers_done = True
        while self._second_pass is not None and self._second_pass.unsettled:
            if self._settling is None:
                self._settle_if_due(finishing=True)
            if self._settling is None:
                return
            self._window_done.clear()
            await self._window_done.wait()
            if self._failed is not None:
                raise self._failed

    def _event(self, segment: Segment, result: DecodeResult, heard_at: float) -> SpeechEvent | None:
        decoded = result.decoded
        assert isinstance(decoded, Decoded)
        audio_s = len(segment.audio) / SAMPLE_RATE
        text = decoded.text
        log.debug(
            "%s utterance %d: %.2f s audio, %d chars, recognised %.3f s after queueing",
            "final" if segment.final else "partial",
            segment.seq,
            audio_s,
            len(text),
            result.recognized_at - result.queued_at,
        )
        if segment.final and self._agreement_seq == segment.seq:
            self._agreement = None  # the utterance is over; its history is not needed any more
        if not text:
            return None
        if segment.final:
            stable = len(text)
        else:
            if segment.seq != self._agreement_seq or self._agreement is None:
                self._agreement = LocalAgreement(decoded.language)
                self._agreement_seq = segment.seq
            text, stable = self._agreement.update(text)
        kind = SpeechEventKind.FINAL if segment.final else SpeechEventKind.PARTIAL
        return _event_of(kind, segment, decoded, text, stable, _timings(result, heard_at))


def _event_of(
    kind: SpeechEventKind,
    segment: Segment,
    decoded: Decoded,
    text: str,
    stable_chars: int,
    timings: dict[str, float],
) -> SpeechEvent:
    return SpeechEvent(
        kind=kind,
        utterance_seq=segment.seq,
        text=text,
        stable_chars=stable_chars,
        language=decoded.language,
        start_s=segment.start_sample / SAMPLE_RATE,
        end_s=segment.end_sample / SAMPLE_RATE,
        english=(decoded.english if segment.final else None) or None,
        confidence=decoded.confidence if segment.final else None,
        english_confidence=decoded.english_confidence if segment.final else None,
        timings=timings,
    )


def _same_utterance(tentative: Segment, final: Segment) -> bool:
    return (tentative.seq, tentative.start_sample, tentative.end_sample, len(tentative.audio)) == (
        final.seq,
        final.start_sample,
        final.end_sample,
        len(final.audio),
    )


def _timings(result: DecodeResult, speech_end: float) -> dict[str, float]:
    # A final decoded while its closing silence was still running (a tentative one) was queued, and
    # maybe recognised, before the utterance ended; from the listener's side those stages start then.
    return {
        "speech_end": speech_end,
        "queued": max(result.queued_at, speech_end),
        "recognized": max(result.recognized_at, speech_end),
    }
