"""Media: WebRTC peer connections, forwarding tracks between participants, and the audio tap.

Frames come in from a browser (or the headless participant) over aiortc; `AudioTap` turns each
decoded frame into 16 kHz mono float32 samples for speech recognition.
"""

from media.audio_tap import SAMPLE_RATE, AudioTap, tap_track
from media.file_source import FileAudioTrack
from media.ice import enable_loopback_candidates
from media.peers import MediaHub, NegotiationError, Publication

__all__ = [
    "SAMPLE_RATE",
    "AudioTap",
    "FileAudioTrack",
    "MediaHub",
    "NegotiationError",
    "Publication",
    "enable_loopback_candidates",
    "tap_track",
]
