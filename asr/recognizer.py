"""The speech recogniser: one Whisper model and one worker thread shared by every stream."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel

from asr.config import SAMPLE_RATE, RecognizerConfig
from asr.decoder import WhisperDecoder
from asr.stream import RecognitionStream, StreamWorker
from asr.vad import StreamingVad

log = logging.getLogger(__name__)

_DEFAULT_CONFIG = RecognizerConfig()


class SpeechRecognizer:
    def __init__(self, model_path: Path, config: RecognizerConfig = _DEFAULT_CONFIG) -> None:
        """Load the model. Blocking (seconds): call it off the event loop."""
        started = time.perf_counter()
        self.config = config
        self._model = WhisperModel(
            str(model_path),
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
        )
        self._decoder = WhisperDecoder(self._model)
        # One thread runs all inference: CTranslate2 already uses cpu_threads inside each call, and
        # serialising calls keeps every stream's latency predictable instead of thrashing the cores.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        self._streams: weakref.WeakSet[RecognitionStream] = weakref.WeakSet()
        self._closed = False
        log.info("whisper model loaded in %.2f s", time.perf_counter() - started)

    def warm_up(self) -> None:
        """One tiny inference per decoding path, so the first caption is not slow. Blocking."""
        self._executor.submit(self._warm_up).result()

    def _warm_up(self) -> None:
        started = time.perf_counter()
        rng = np.random.default_rng(0)
        audio = (rng.standard_normal(SAMPLE_RATE) * 0.01).astype(np.float32)
        StreamingVad().process(audio)
        for short_window in (True, False):
            self._decoder.decode(
                audio,
                language=None,
                allowed_languages=None,
                beam_size=self.config.beam_size,
                english_wanted=False,
                short_window=short_window,
                fallback=False,
            )
        log.info("warm-up took %.2f s", time.perf_counter() - started)

    def open_stream(
        self,
        *,
        language: str | None,
        allowed_languages: frozenset[str] | None = None,
        english_wanted: bool = False,
    ) -> RecognitionStream:
        """A stream for one speaker. `language` None: detected per utterance, among allowed_languages."""
        if self._closed:
            raise RuntimeError("speech recogniser is closed")
        worker = StreamWorker(self._decoder, self.config, language, allowed_languages)
        stream = RecognitionStream(worker, self._executor, self.config, english_wanted, self._streams.discard)
        self._streams.add(stream)
        return stream

    async def aclose(self) -> None:
        """Finish every open stream (their last finals are still emitted), then stop the worker."""
        if self._closed:
            return
        self._closed = True
        streams = list(self._streams)
        await asyncio.gather(*(stream.finish() for stream in streams), return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
