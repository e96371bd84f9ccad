"""The speech recogniser: one Whisper model and one batching scheduler shared by every stream."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel

from asr.config import SAMPLE_RATE, RecognizerConfig, RecognizerError, RecognizerStats
from asr.decoder import DecodeTask, WhisperDecoder, WindowTask
from asr.scheduler import BatchDecoder, DecodeScheduler
from asr.stream import RecognitionStream
from asr.vad import StreamingVad

log = logging.getLogger(__name__)

_DEFAULT_CONFIG = RecognizerConfig()
_T = TypeVar("_T")

# Precisions that suit each device when compute_type is "default": int8 is CTranslate2's fastest on CPU;
# on GPU float16 keeps Whisper's accuracy (int8_float16 saves memory for large models if asked for).
_DEFAULT_COMPUTE_TYPE = {"cpu": "int8", "cuda": "float16"}
_DEFAULT_MAX_BATCH = {"cpu": 1, "cuda": 8}


def _default_prep_threads(device: str) -> int:
    return 0 if device == "cpu" else max(1, min(8, (os.cpu_count() or 1) - 2))


_MISSING_LIBRARY = re.compile(r"(lib[\w.+-]+\.so[\w.]*)")


def resolve_device(device: str, compute_type: str) -> tuple[str, str]:
    """("auto" | "cpu" | "cuda", "default" | precision) -> the concrete device and precision."""
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if device not in _DEFAULT_COMPUTE_TYPE:
        raise RecognizerError(f"unknown ASR device {device!r}: use 'cpu', 'cuda' or 'auto'")
    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise RecognizerError(
            "ASR device 'cuda' requested but CTranslate2 sees no CUDA GPU (check the driver)"
        )
    if compute_type == "default":
        compute_type = _DEFAULT_COMPUTE_TYPE[device]
    return device, compute_type


def _explain_cuda_failure(exc: Exception) -> RecognizerError | None:
    """CTranslate2's terse "Library libcublas.so.12 is not found" turned into what to install."""
    message = str(exc)
    missing = _MISSING_LIBRARY.search(message)
    if missing is None and "cuda" not in message.lower() and "cudnn" not in message.lower():
        return None
    what = missing.group(1) if missing else "a CUDA library"
    return RecognizerError(
        f"GPU speech recognition cannot start: {what} could not be loaded ({message}). CTranslate2 "
        f"{ctranslate2.__version__} needs CUDA 12 cuBLAS and cuDNN 9 (e.g. pip install nvidia-cublas-cu12 "
        "nvidia-cudnn-cu12, with their lib folders on LD_LIBRARY_PATH). On a CUDA 13 host, exposing CUDA "
        "13's libcublas as libcublas.so.12 also works. Or run ASR on the CPU (device 'cpu')."
    )


def _load(model_path: Path, config: RecognizerConfig, device: str, compute_type: str) -> WhisperModel:
    try:
        return WhisperModel(
            str(model_path), device=device, compute_type=compute_type, cpu_threads=config.cpu_threads
        )
    except (RuntimeError, OSError, ValueError) as exc:
        raise (_explain_cuda_failure(exc) if device == "cuda" else None) or RecognizerError(
            f"cannot load the Whisper model at {model_path} on {device} ({compute_type}): {exc}"
        ) from exc


DecoderFactory = Callable[..., WhisperDecoder]


class SpeechRecognizer:
    def __init__(
        self,
        model_path: Path,
        config: RecognizerConfig = _DEFAULT_CONFIG,
        *,
        decoder_factory: DecoderFactory = WhisperDecoder,
    ) -> None:
        """Load the model. Blocking (seconds): call it off the event loop. Raises RecognizerError.

        `decoder_factory` is called as WhisperDecoder is (model, beam size, feature_pool=...,
        short_final_windows=..., window_beam_size=...): benchmarks pass a decoder for random-weight
        models there.
        """
        started = time.perf_counter()
        self.config = config
        self.device, self.compute_type = resolve_device(config.device, config.compute_type)
        self._model = _load(model_path, config, self.device, self.compute_type)
        self.prep_threads = config.prep_threads or _default_prep_threads(self.device)
        self._prep_pool: ThreadPoolExecutor | None = None
        if self.prep_threads > 0:
            self._prep_pool = ThreadPoolExecutor(self.prep_threads, thread_name_prefix="asr-prep")
        self._decoder = decoder_factory(
            self._model,
            config.beam_size,
            feature_pool=self._prep_pool,
            short_final_windows=config.short_final_windows,
            window_beam_size=config.settle_beam_size,
        )
        # One thread runs all first-pass inference, batching across streams: CTranslate2 already uses
        # every core (or the GPU) inside each call, and one call for many streams is what scales on a
        # GPU. A CPU decodes second-pass windows in a low-priority lane of their own (asr/scheduler.py),
        # with a second copy of the model (Whisper base int8: about 275 MB more resident memory).

        def second_pass_lane() -> BatchDecoder:  # called on the lane's thread
            model = _load(model_path, config, self.device, self.compute_type)
            decoder = decoder_factory(
                model,
                config.beam_size,
                short_final_windows=config.short_final_windows,
                window_beam_size=config.settle_beam_size,
            )
            return decoder.decode_batch

        self._scheduler = DecodeScheduler(
            self._decoder.decode_batch,
            max_batch=config.max_batch or _DEFAULT_MAX_BATCH[self.device],
            window_s=config.batch_window_ms / 1000,
            second_pass_lane=second_pass_lane if config.second_pass and self.device == "cpu" else None,
        )
        self._streams: weakref.WeakSet[RecognitionStream] = weakref.WeakSet()
        self._closed = False
        log.info(
            "whisper model loaded on %s (%s) in %.2f s; VAD and features on %s",
            self.device,
            self.compute_type,
            time.perf_counter() - started,
            f"{self.prep_threads} threads" if self.prep_threads else "the scheduler thread",
        )

    def warm_up(self) -> None:
        """One tiny inference per decoding path, so the first caption is not slow. Blocking.

        On a GPU this is also where missing cuBLAS/cuDNN shows up: CTranslate2 loads them lazily.
        """
        started = time.perf_counter()
        rng = np.random.default_rng(0)
        audio = (rng.standard_normal(SAMPLE_RATE) * 0.01).astype(np.float32)
        self._prepare(StreamingVad().process, audio).result()
        tasks: list[DecodeTask | WindowTask] = [
            DecodeTask(audio=audio, final=final, language=None, allowed_languages=None, english_wanted=False)
            for final in (True, False)
        ]
        if self.config.second_pass:
            tasks.append(WindowTask(audio=audio, language="en", english_wanted=False))
        self._translate_errors(lambda: self._scheduler.run(tasks))
        log.info("warm-up took %.2f s", time.perf_counter() - started)

    def _translate_errors(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except (RuntimeError, OSError) as exc:
            explained = _explain_cuda_failure(exc) if self.device == "cuda" else None
            if explained is None:
                raise
            raise explained from exc

    def open_stream(
        self,
        *,
        language: str | None,
        allowed_languages: frozenset[str] | None = None,
        english_wanted: bool = False,
        glossary: Sequence[str] = (),
        live: bool = True,
    ) -> RecognitionStream:
        """A stream for one speaker. `language` None: detected per utterance, among allowed_languages.

        `live`: audio comes as it is spoken and cannot wait (a call): when settling falls behind, the
        oldest waiting finals are settled as they were. Not live (a file, a benchmark pushing as fast
        as it may): `push` also waits for settling.

        `glossary`: terms to bias recognition towards (e.g. `protocol.Glossary.words`); the stream's
        `glossary` attribute can be replaced later.
        """
        if self._closed:
            raise RuntimeError("speech recogniser is closed")
        stream = RecognitionStream(
            self._scheduler,
            self.config,
            language=language,
            allowed_languages=allowed_languages,
            english_wanted=english_wanted,
            glossary=glossary,
            live=live,
            on_closed=self._streams.discard,
            prepare=self._prepare,
        )
        self._streams.add(stream)
        return stream

    def _prepare(self, fn: Callable[..., _T], *args: object) -> Future[_T]:
        """Run a stream's VAD and segmenting: in the pool, or on the scheduler thread between batches."""
        if self._prep_pool is None:
            return self._scheduler.call(fn, *args)
        return self._prep_pool.submit(fn, *args)

    def stats(self) -> RecognizerStats:
        """Scheduler counters for metrics: queue depth, active streams, batches and their sizes."""
        return self._scheduler.stats()

    async def aclose(self) -> None:
        """Finish every open stream (their last finals are still emitted), then stop the threads."""
        if self._closed:
            return
        self._closed = True
        streams = list(self._streams)
        await asyncio.gather(*(stream.finish() for stream in streams), return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._scheduler.close)
        if self._prep_pool is not None:
            self._prep_pool.shutdown(wait=True)
