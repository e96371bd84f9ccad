"""Streaming Silero VAD: speech probabilities for audio arriving in arbitrary chunk sizes.

faster-whisper ships Silero VAD v6 as ONNX but only runs it over whole files, resetting the LSTM state
per call. Here the state (h, c and the 64-sample context) is carried across calls so a stream can be
fed 20 ms at a time and still get the probabilities an offline pass would give.
"""

from __future__ import annotations

import numpy as np
from faster_whisper.vad import get_vad_model

WINDOW = 512  # samples per probability (32 ms at 16 kHz), fixed by the model
_CONTEXT = 64  # samples of the previous window the model sees in front of each window
_STATE_SHAPE = (1, 1, 128)


class StreamingVad:
    """Per-stream VAD state. Not thread-safe: one stream's preparation jobs, one at a time, use it."""

    def __init__(self) -> None:
        # One ONNX session (cached by faster-whisper) serves every stream; only the state is ours.
        self._session = get_vad_model().session
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._remainder = np.zeros(0, dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Speech probability for each complete 512-sample window now available, in order."""
        audio = np.concatenate([self._remainder, samples.astype(np.float32, copy=False)])
        n_windows = len(audio) // WINDOW
        self._remainder = audio[n_windows * WINDOW :].copy()
        if n_windows == 0:
            return np.zeros(0, dtype=np.float32)
        windows = audio[: n_windows * WINDOW].reshape(n_windows, WINDOW)
        contexts = np.empty((n_windows, _CONTEXT), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = windows[:-1, -_CONTEXT:]
        self._context = windows[-1, -_CONTEXT:].copy()
        batch = np.concatenate([contexts, windows], axis=1)
        # The model treats the batch axis as time, so one call covers all windows and returns the
        # state after the last of them.
        probs, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        return np.asarray(probs, dtype=np.float32).reshape(-1)
