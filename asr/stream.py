"""One speaker's audio in, transcripts out.

The asyncio side (RecognitionStream) only buffers audio and hands it over; everything that costs CPU
(VAD, Whisper) happens in StreamWorker.process() on the recogniser's single worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor

import numpy as np

from asr.agreement import LocalAgreement
from asr.config import SAMPLE_RATE, RecognizerConfig, Transcript
from asr.decoder import WhisperDecoder
from asr.hallucinations import is_hallucination
from asr.segmenter import Segment, UtteranceSegmenter

log = logging.getLogger(__name__)


class StreamFinishedError(RuntimeError):
    """push() after finish(), or after the stream failed."""


class StreamWorker:
    """The CPU side of one stream. Only ever called on the recogniser's worker thread."""

    def __init__(
        self,
        decoder: WhisperDecoder,
        config: RecognizerConfig,
        language: str | None,
        allowed_languages: frozenset[str] | None,
    ) -> None:
        self._decoder = decoder
        self._config = config
        self._language = language
        self._allowed = allowed_languages
        self._segmenter = UtteranceSegmenter(config)
        self._agreement = LocalAgreement()
        self._agreement_seq = -1

    def process(self, samples: np.ndarray, finishing: bool, english_wanted: bool) -> list[Transcript]:
        segments = self._segmenter.feed(samples) if samples.size else []
        if finishing:
            # A partial for audio that is about to be finalised would be stale on arrival.
            segments = [s for s in segments if s.final] + self._segmenter.flush()
        transcripts = []
        for segment in segments:
            transcript = self._decode(segment, english_wanted)
            if transcript is not None:
                transcripts.append(transcript)
        return transcripts

    def _decode(self, segment: Segment, english_wanted: bool) -> Transcript | None:
        started = time.perf_counter()
        decoded = self._decoder.decode(
            segment.audio,
            language=self._language,
            allowed_languages=self._allowed,
            beam_size=self._config.beam_size if segment.final else 1,
            english_wanted=english_wanted and segment.final,
            short_window=not segment.final,
            fallback=segment.final,
        )
        audio_s = len(segment.audio) / SAMPLE_RATE
        log.debug(
            "decoded %s utterance %d: %.2f s audio in %.2f s, %d chars",
            "final" if segment.final else "partial",
            segment.seq,
            audio_s,
            time.perf_counter() - started,
            len(decoded.text),
        )
        if not decoded.text or is_hallucination(decoded.text, audio_s):
            return None
        if segment.final:
            text, stable = decoded.text, len(decoded.text)
        else:
            if segment.seq != self._agreement_seq:
                self._agreement = LocalAgreement()
                self._agreement_seq = segment.seq
            text, stable = self._agreement.update(decoded.text)
        return Transcript(
            utterance_seq=segment.seq,
            final=segment.final,
            text=text,
            stable_chars=stable,
            language=decoded.language,
            start_s=segment.start_sample / SAMPLE_RATE,
            end_s=segment.end_sample / SAMPLE_RATE,
            english=decoded.english if segment.final else None,
        )


_END = object()


class RecognitionStream:
    """Push audio, iterate transcripts. Create with SpeechRecognizer.open_stream()."""

    def __init__(
        self,
        worker: StreamWorker,
        executor: Executor,
        config: RecognizerConfig,
        english_wanted: bool,
        on_closed: Callable[[RecognitionStream], None],
    ) -> None:
        self.english_wanted = english_wanted  # read per job, so listeners joining take effect at once
        self._worker = worker
        self._executor = executor
        self._max_queued = max(1, int(config.max_queued_s * SAMPLE_RATE))
        self._on_closed = on_closed
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._in_flight_samples = 0
        self._pushed_samples = 0
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        # Unbounded, but filled at most one partial per partial_interval_s of audio plus one final
        # per utterance, so it grows only with audio that push() already bounded.
        self._out: asyncio.Queue[object] = asyncio.Queue()
        self._finishing = False
        self._failed: BaseException | None = None
        self._pump_task: asyncio.Task[None] | None = None

    @property
    def queued_s(self) -> float:
        """Audio accepted by push() and not yet processed, in seconds."""
        return (self._pending_samples + self._in_flight_samples) / SAMPLE_RATE

    @property
    def pushed_s(self) -> float:
        return self._pushed_samples / SAMPLE_RATE

    async def push(self, samples: np.ndarray) -> None:
        """Queue float32 mono 16 kHz audio; waits while more than max_queued_s is unprocessed."""
        self._check_open()
        self._ensure_pump()
        while self._pending_samples + self._in_flight_samples >= self._max_queued:
            self._space.clear()
            await self._space.wait()
            self._check_open()
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._pending.append(chunk)
        self._pending_samples += len(chunk)
        self._pushed_samples += len(chunk)
        self._wake.set()

    def __aiter__(self) -> AsyncIterator[Transcript]:
        return self._transcripts()

    async def _transcripts(self) -> AsyncIterator[Transcript]:
        self._ensure_pump()
        while True:
            item = await self._out.get()
            if item is _END:
                # Leave the marker for any other iterator, and for repeated iteration.
                self._out.put_nowait(_END)
                return
            assert isinstance(item, Transcript)
            yield item

    async def finish(self) -> None:
        """Finalise speech in progress, emit its final, then end the iteration. Idempotent."""
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
            self._pump_task = asyncio.get_running_loop().create_task(self._pump(), name="asr-stream-pump")
        return self._pump_task

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                finishing = self._finishing
                chunk = np.concatenate(self._pending) if self._pending else np.zeros(0, dtype=np.float32)
                self._pending.clear()
                self._in_flight_samples, self._pending_samples = self._pending_samples, 0
                # Handing over everything queued at once is what keeps a lagging stream from
                # queueing stale partial work: one job, at most one partial, for the newest audio.
                transcripts = await loop.run_in_executor(
                    self._executor, self._worker.process, chunk, finishing, self.english_wanted
                )
                self._in_flight_samples = 0
                self._space.set()
                for transcript in transcripts:
                    self._out.put_nowait(transcript)
                if finishing:
                    return
        except Exception as exc:
            log.exception("recognition stream failed")
            self._failed = exc
        finally:
            self._finishing = True
            self._space.set()
            self._out.put_nowait(_END)
            self._on_closed(self)
