"""Speech recognition: audio frames in, speech events out (faster-whisper + Silero VAD).

Per utterance a stream emits partials, perhaps a preliminary final, a final, and later a settled event
from the second pass (asr/settle.py) that replaces one or more finals for good.
"""

from asr.chinese_script import to_simplified, to_traditional
from asr.config import (
    Confidence,
    RecognizerConfig,
    RecognizerError,
    RecognizerStats,
    SpeechEvent,
    SpeechEventKind,
)
from asr.recognizer import SpeechRecognizer
from asr.stream import RecognitionStream, StreamFinishedError

__all__ = [
    "Confidence",
    "RecognitionStream",
    "RecognizerConfig",
    "RecognizerError",
    "RecognizerStats",
    "SpeechEvent",
    "SpeechEventKind",
    "SpeechRecognizer",
    "StreamFinishedError",
    "to_simplified",
    "to_traditional",
]
