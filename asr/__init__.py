"""Speech recognition: audio frames in, partial and final transcripts out (faster-whisper + Silero VAD)."""

from asr.config import RecognizerConfig, RecognizerError, RecognizerStats, Transcript
from asr.recognizer import SpeechRecognizer
from asr.stream import RecognitionStream, StreamFinishedError

__all__ = [
    "RecognitionStream",
    "RecognizerConfig",
    "RecognizerError",
    "RecognizerStats",
    "SpeechRecognizer",
    "StreamFinishedError",
    "Transcript",
]
