"""Prometheus metrics: per-stage caption latency, queue depths, live rooms and speakers, loaded models,
and the event loop's lag.

Stage latencies come from the timestamps every caption carries (`CaptionEvent.timings`), so the
metrics, the logs and the benchmark all measure the same thing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

# Stage name -> (from timestamp, to timestamp). "sent" is the event's sent_at.
STAGES: dict[str, tuple[str, str]] = {
    "queue": ("speech_end", "queued"),
    "recognition": ("queued", "recognized"),
    "translation": ("recognized", "translated"),
    "delivery": ("translated", "sent"),
    "total": ("speech_end", "sent"),
}
_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
LOOP_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LOOP_PROBE_INTERVAL_S = 0.1


async def probe_loop_lag(record: Callable[[float], None], interval_s: float = LOOP_PROBE_INTERVAL_S) -> None:
    """Runs until cancelled: sleeps `interval_s` at a time and records how much later than asked it
    woke up, which is how long callbacks due on this event loop waited."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        record(max(0.0, loop.time() - asked))


@dataclass(frozen=True)
class LiveFigures:
    rooms: int
    participants: int
    speakers: int
    recognizer: dict[str, float]  # SpeechRecognizer.stats()
    translation_pending: int
    media: dict[str, float]  # media.MediaFigures
    models: dict[str, dict[str, str]]  # stage -> {"model": ..., "device": ..., "compute_type": ...}


class _LiveCollector(Collector):
    def __init__(self, read: Callable[[], LiveFigures | None]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        figures = self._read()
        if figures is None:
            return
        yield GaugeMetricFamily("babelcall_active_rooms", "Rooms with someone in them", value=figures.rooms)
        yield GaugeMetricFamily(
            "babelcall_active_participants", "Participants in calls", value=figures.participants
        )
        yield GaugeMetricFamily(
            "babelcall_active_speakers", "Participants whose audio is recognised", value=figures.speakers
        )
        yield GaugeMetricFamily(
            "babelcall_translation_pending",
            "Translation model calls queued or running",
            value=figures.translation_pending,
        )
        yield _figures(
            "babelcall_media",
            "Media workers: workers running, participants with media, decoded audio waiting for "
            "recognition and audio dropped because recognition fell too far behind (seconds)",
            figures.media,
        )
        yield _figures("babelcall_asr", "Speech recogniser scheduler figures", figures.recognizer)
        models = InfoMetricFamily("babelcall_model", "Models loaded per stage", labels=["stage"])
        for stage, info in figures.models.items():
            models.add_metric([stage], info)
        yield models


def _figures(name: str, documentation: str, values: dict[str, float]) -> GaugeMetricFamily:
    """One gauge per named figure of a stage, as `name{figure="..."}`."""
    family = GaugeMetricFamily(name, documentation, labels=["figure"])
    for figure, value in sorted(values.items()):
        family.add_metric([figure], float(value))
    return family


class Metrics:
    def __init__(self) -> None:
        # One registry per server, not prometheus_client's global one: tests run several servers.
        self.registry = CollectorRegistry()
        self._latency = Histogram(
            "babelcall_stage_latency_seconds",
            "Seconds each stage took per caption (partial, final or settled)",
            ["stage", "kind"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._captions = Counter(
            "babelcall_captions",
            "Caption events sent, by translation path",
            ["path", "kind"],
            registry=self.registry,
        )
        self._early_translations = Counter(
            "babelcall_early_translations",
            "Final translations started during the utterance's closing silence, by whether the final "
            "used them (speech that resumes, or a listener who joins meanwhile, wastes one)",
            ["outcome"],
            registry=self.registry,
        )
        self._loop_lag = Histogram(
            "babelcall_event_loop_lag_seconds",
            "How late the server's event loop ran a callback due now: every speaker's audio batch, "
            "caption and signalling message goes through this one loop, so lag here delays them all",
            buckets=LOOP_LAG_BUCKETS,
            registry=self.registry,
        )

    async def probe_event_loop(self) -> None:
        """Runs until cancelled, recording the server's event-loop lag (see `probe_loop_lag`)."""
        await probe_loop_lag(self._loop_lag.observe)

    def watch(self, read: Callable[[], LiveFigures | None]) -> None:
        self.registry.register(_LiveCollector(read))

    def observe(
        self, timings: dict[str, float], sent_at: float, *, kind: str, path: str, listeners: int
    ) -> None:
        """One caption sent: `kind` is the caption's (partial, final, settled)."""
        points = {**timings, "sent": sent_at}
        for stage, (start, end) in STAGES.items():
            if start in points and end in points:
                self._latency.labels(stage, kind).observe(max(0.0, points[end] - points[start]))
        self._captions.labels(path, kind).inc(listeners)

    def early_translation(self, *, used: bool) -> None:
        self._early_translations.labels("used" if used else "wasted").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
