"""Media: WebRTC peer connections in worker processes, relaying between participants, and the audio tap.

The server talks to `MediaHub`; each media worker process (`media.worker`) runs the aiortc peer
connections of the rooms pinned to it and taps every published microphone, turning each decoded frame
into 16 kHz mono float32 samples for speech recognition (`AudioTap`).
"""

from media.audio_level import use_fast_audio_level
from media.audio_tap import SAMPLE_RATE, AudioTap
from media.file_source import FileAudioTrack, PatternVideoTrack
from media.hub import MediaFigures, MediaHub, MediaSettings, MediaUnavailableError
from media.ice import enable_loopback_candidates
from media.peers import NegotiationError
from media.worker import WorkerSettings

__all__ = [
    "SAMPLE_RATE",
    "AudioTap",
    "FileAudioTrack",
    "MediaFigures",
    "MediaHub",
    "MediaSettings",
    "MediaUnavailableError",
    "NegotiationError",
    "PatternVideoTrack",
    "WorkerSettings",
    "enable_loopback_candidates",
    "use_fast_audio_level",
]
