"""Streaming-recognition benchmark: speech files pushed through asr/ in real time, no network.

    python -m bench.asr_stream [--files NAME ...] [--speed 1.0] [--out bench/out/asr_stream] [--shared DIR]

For every dev speech file (../shared/data/dev/speech) it reports WER/CER of the streaming finals against
the reference and against offline faster-whisper (same model and compute type, beam 5 and beam 1, the
median of --offline-runs runs),
first-partial latency, final latency, partial updates per second, real-time factor and RSS over time.
Generated silence and noise measure hallucinations (captions per minute of non-speech). Writes
<out>/results.json and <out>/results.png and prints a table. Only asr's public interface is used.

Latency is measured in wall-clock time against the moment the relevant audio was pushed. Speech onsets
and ends come from an offline Silero VAD pass over each file (the references carry no times), with the
same silence threshold as the streaming engine so that VAD regions and utterances line up.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from bench.common import (
    CHARACTER_LANGUAGES,
    DEFAULT_SHARED,
    REPO_ROOT,
    RssSampler,
    corpus_error_rates,
    machine_info,
    normalise_text,
    package_versions,
    relative_error_interval,
    require_shared,
    split_reference_by_utterance,
    summarise,
    to_simplified_chinese,
    word_errors_per_unit,
    write_json,
)
from bench.consultations import VOICES, ConsultationError, make_consultations

SAMPLE_RATE = 16_000
CHUNK = SAMPLE_RATE // 50  # 20 ms, what a microphone / the server's audio track delivers
# Appended after every file: a microphone keeps delivering (near-)silence after the speaker stops, and
# the engine ends an utterance on silence; without it the last final would only come from finish().
TRAILING_SILENCE_S = 2.0
CONSULTATION_CACHE = REPO_ROOT / "bench" / "out" / "consultations"
LAG_BLOCK_S = 600  # final lag is also summarised per 10 minutes of audio, to show drift
AUDIO_SUFFIXES = {".flac", ".wav", ".mp3", ".aiff", ".ogg", ".m4a"}
NOISE_KINDS = ("silence", "white", "pink", "room_keyboard")
# asr.RecognizerStats counters reported per file, as their change over the file's run.
SCHEDULER_COUNTERS = (
    "batches",
    "requests",
    "second_pass_requests",
    "second_pass_s",
    "second_pass_cpu_s",
    "held_by_second_pass",
    "finals_held_by_second_pass",
    "held_by_second_pass_s",
)

log = logging.getLogger("bench.asr_stream")


# --- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechFile:
    name: str
    path: Path
    language: str  # "en", "zh", or "en+de" for code-switching
    reference: str | None
    reference_note: str = ""
    # The reference cut into turns (from <name>.ref.tsv), the units the confidence interval resamples;
    # empty when the reference is one piece.
    reference_turns: tuple[str, ...] = ()

    @property
    def reference_units(self) -> tuple[str, ...]:
        return self.reference_turns or ((self.reference,) if self.reference else ())

    @property
    def languages(self) -> list[str]:
        return self.language.split("+")

    @property
    def scoring_language(self) -> str:
        return self.language if len(self.languages) == 1 else "mixed"


def load_speech_files(speech_dir: Path, names: list[str] | None) -> list[SpeechFile]:
    rows: dict[str, list[str]] = {}
    refs_tsv = speech_dir / "refs.tsv"
    for line in refs_tsv.read_text(encoding="utf-8").splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) >= 4:
            rows[fields[0]] = fields
    if names is None:
        names = sorted(p.name for p in speech_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    wanted = names
    files = []
    for name in wanted:
        path = speech_dir / name
        if not path.is_file():
            sys.exit(f"speech file not found: {path}")
        fields = rows.get(name)
        if fields is None:
            sys.exit(f"{name} has no row in {refs_tsv}: its language is unknown")
        language, reference, note = fields[1], fields[3], fields[4] if len(fields) > 4 else ""
        side_ref = path.with_name(path.stem + ".ref.tsv")
        turns: tuple[str, ...] = ()
        if side_ref.is_file():
            # Turn-by-turn reference (columns: speaker, text); no timestamps, so it serves WER only.
            rows_of_turns = [ln.split("\t") for ln in side_ref.read_text(encoding="utf-8").splitlines()[1:]]
            turns = tuple(t[-1] for t in rows_of_turns if t and t[-1].strip())
            reference = " ".join(turns)
        elif reference.startswith("("):
            reference = None  # "(the MIT licence text...)": described, not transcribed
        files.append(SpeechFile(name, path, language, reference, note, turns))
    return files


def speech_regions(audio: np.ndarray, silence_ms: int) -> list[tuple[int, int]]:
    """Offline Silero VAD: (start, end) samples of speech, split on pauses the engine would also split on."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=silence_ms, speech_pad_ms=0, min_speech_duration_ms=250)
    return [(int(r["start"]), int(r["end"])) for r in get_speech_timestamps(audio, options)]


def make_noise(kind: str, seconds: float, seed: int = 0) -> np.ndarray:
    """Non-speech test signals; levels are typical of a quiet room picked up by a laptop microphone."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    if kind == "silence":
        return np.zeros(n, dtype=np.float32)
    if kind == "white":
        return (rng.standard_normal(n) * 0.03).astype(np.float32)
    if kind == "pink":
        return _pink(rng, n, rms=0.03)
    if kind == "room_keyboard":
        t = np.arange(n) / SAMPLE_RATE
        room = _pink(rng, n, rms=0.004)
        hum = 0.003 * np.sin(2 * np.pi * 50 * t) + 0.0015 * np.sin(2 * np.pi * 150 * t)
        clicks = np.zeros(n)
        click_len = int(0.012 * SAMPLE_RATE)
        envelope = np.exp(-np.arange(click_len) / (0.002 * SAMPLE_RATE))
        pos = 0.0
        while pos < seconds:
            # Typing bursts of 2-5 s at ~6 keys/s, separated by 1-3 s pauses.
            burst_end = pos + rng.uniform(2, 5)
            while pos < min(burst_end, seconds):
                start = int(pos * SAMPLE_RATE)
                burst = np.diff(rng.standard_normal(click_len + 1)) * envelope * rng.uniform(0.05, 0.2)
                end = min(n, start + click_len)
                clicks[start:end] += burst[: end - start]
                pos += rng.exponential(1 / 6)
            pos += rng.uniform(1, 3)
        return np.clip(room + hum + clicks, -1, 1).astype(np.float32)
    raise ValueError(f"unknown noise kind {kind!r}")


def _pink(rng: np.random.Generator, n: int, rms: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return (pink / np.sqrt(np.mean(pink**2)) * rms).astype(np.float32)


# --- streaming ----------------------------------------------------------------------------------


@dataclass
class StreamRun:
    audio_s: float
    push_times: np.ndarray  # wall seconds (since the run started) at which chunk i was pushed
    events: list[dict[str, Any]] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    push_blocked_s: float = 0.0  # time push() spent waiting on back-pressure
    drain_s: float = 0.0  # from the last push to finish() returning
    loadavg_1m: float = 0.0  # system load when the run ended
    scheduler: dict[str, float] = field(default_factory=dict)  # the recogniser's counters over the run

    def pushed_at(self, sample: int) -> float:
        """Wall time at which the chunk holding `sample` was pushed (audio is usable only from then)."""
        index = min(max(sample, 0) // CHUNK, len(self.push_times) - 1)
        return float(self.push_times[index])


async def stream_audio(
    recognizer: Any,
    audio: np.ndarray,
    *,
    language: str | None,
    allowed_languages: frozenset[str] | None,
    speed: float,
) -> StreamRun:
    audio = np.concatenate([audio, np.zeros(int(TRAILING_SILENCE_S * SAMPLE_RATE), dtype=np.float32)])
    chunks = [audio[i : i + CHUNK] for i in range(0, len(audio), CHUNK)]
    run = StreamRun(audio_s=len(audio) / SAMPLE_RATE, push_times=np.zeros(len(chunks)))
    # As fast as possible, the file waits for settling as a call could not (asr/settle.py).
    stream = recognizer.open_stream(language=language, allowed_languages=allowed_languages, live=speed > 0)
    t0 = time.perf_counter()
    cpu0 = time.process_time()

    async def consume() -> None:
        async for t in stream:
            timings = getattr(t, "timings", None) or {}
            run.events.append(
                {
                    "wall_s": round(time.perf_counter() - t0, 4),
                    "utterance_seq": t.utterance_seq,
                    "kind": str(t.kind),
                    "replaces": list(t.replaces),
                    "uncertain": t.uncertain,
                    "text": t.text,
                    "stable_chars": t.stable_chars,
                    "language": t.language,
                    "start_s": t.start_s,
                    "end_s": t.end_s,
                    "timings": {k: v for k, v in dict(timings).items() if isinstance(v, int | float | str)},
                }
            )

    consumer = asyncio.create_task(consume())
    for i, chunk in enumerate(chunks):
        if speed > 0:
            # Absolute schedule, so sleep jitter never accumulates into drift.
            delay = t0 + i * CHUNK / SAMPLE_RATE / speed - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        pushed = time.perf_counter()
        run.push_times[i] = pushed - t0
        await stream.push(chunk)
        run.push_blocked_s += time.perf_counter() - pushed
    last_push = time.perf_counter()
    await stream.finish()
    await consumer
    now = time.perf_counter()
    run.drain_s = now - last_push
    run.wall_s = now - t0
    run.cpu_s = time.process_time() - cpu0
    # Other processes on a small machine inflate latency (not CPU time): keep the evidence with the run.
    run.loadavg_1m = os.getloadavg()[0]
    return run


def analyse_latency(run: StreamRun, regions: list[tuple[int, int]], speed: float) -> dict[str, Any]:
    """Match captions to VAD speech regions and measure onset->first partial and end->final.

    Regions and utterances rarely map one-to-one (the engine merges regions across short pauses and
    cuts monologues at max_utterance_s), so both are grouped into connected components of overlapping
    intervals: a group's onset is its first region's start, its end is its last region's end, its first
    partial the earliest partial of any of its utterances and its final the latest final.
    """
    utterances: dict[int, dict[str, Any]] = {}
    for e in run.events:
        u = utterances.setdefault(
            e["utterance_seq"], {"start": e["start_s"], "end": e["end_s"], "events": []}
        )
        u["start"] = min(u["start"], e["start_s"])
        u["end"] = max(u["end"], e["end_s"])
        u["events"].append(e)

    # Union-find over nodes ("r", i) for regions and ("u", seq) for utterances.
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(x: tuple[str, int]) -> tuple[str, int]:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for i, (rs, re_) in enumerate(regions):
        find(("r", i))
        for seq, u in utterances.items():
            if u["start"] < re_ / SAMPLE_RATE and rs / SAMPLE_RATE < u["end"]:
                parent[find(("u", seq))] = find(("r", i))
    for seq in utterances:
        find(("u", seq))
    groups: dict[tuple[str, int], dict[str, list[int]]] = {}
    for node in list(parent):
        g = groups.setdefault(find(node), {"r": [], "u": []})
        g[node[0]].append(node[1])

    # Latencies are wall-clock; at --speed N they shrink with the audio, so scale back to audio time.
    scale = speed if speed > 0 else 1.0
    first_partial, first_caption, final_latency, missed, outside = [], [], [], 0, 0
    for g in groups.values():
        if not g["r"]:
            outside += 1  # caption for audio the offline VAD called non-speech
            continue
        if not g["u"]:
            missed += 1
            continue
        onset = run.pushed_at(min(regions[i][0] for i in g["r"]))
        end = run.pushed_at(max(regions[i][1] for i in g["r"]))
        events = [e for seq in g["u"] for e in utterances[seq]["events"]]
        partials = [e["wall_s"] for e in events if e["kind"] == "partial"]
        finals = [e["wall_s"] for e in events if e["kind"] == "final"]
        first_caption.append((min(e["wall_s"] for e in events) - onset) * scale)
        if partials:
            first_partial.append((min(partials) - onset) * scale)
        if finals:
            final_latency.append((max(finals) - end) * scale)

    # Lag of every final behind its own end of speech, as the engine timestamps it.
    final_events = [e for e in run.events if e["kind"] == "final"]
    final_lag = [(e["wall_s"] - run.pushed_at(round(e["end_s"] * SAMPLE_RATE))) * scale for e in final_events]
    # End of utterance -> settled: a settled event ends where the last final it replaces ended.
    settled_lag = [
        (e["wall_s"] - run.pushed_at(round(e["end_s"] * SAMPLE_RATE))) * scale
        for e in run.events
        if e["kind"] == "settled"
    ]
    # Long sessions: does the lag drift? Summarised per block of audio time.
    blocks: dict[int, list[float]] = {}
    for event, lag in zip(final_events, final_lag, strict=True):
        blocks.setdefault(int(event["end_s"] // LAG_BLOCK_S), []).append(lag)
    return {
        "speech_regions": len(regions),
        "groups_with_speech": sum(1 for g in groups.values() if g["r"]),
        "regions_missed": missed,
        "caption_groups_outside_speech": outside,
        "first_partial_latency_s": summarise(first_partial),
        "first_caption_latency_s": summarise(first_caption),
        "final_latency_s": summarise(final_latency),
        "final_lag_s": summarise(final_lag),
        "settled_lag_s": summarise(settled_lag),
        "final_lag_by_block_s": {
            f"{k * LAG_BLOCK_S / 60:g}-{(k + 1) * LAG_BLOCK_S / 60:g} min": summarise(v)
            for k, v in sorted(blocks.items())
        },
        "_samples": {"first_partial": first_partial, "final": final_latency},
        "_final_lags": final_lag,
        "_settled_lags": settled_lag,
    }


def synthetic_consultations(shared: Path, count: int, per_speaker: bool = False) -> list[SpeechFile]:
    """`count` more PriMock57 consultations read by espeak-ng (bench/consultations.py), made once into
    CONSULTATION_CACHE; with `per_speaker`, each as its doctor's and its patient's track."""
    if count == 0:
        return []
    try:
        made = make_consultations(
            shared / "data" / "dev" / "text" / "primock57", CONSULTATION_CACHE, count, per_speaker=per_speaker
        )
    except ConsultationError as error:
        sys.exit(f"--consultations: {error}")
    voices = ", ".join(f"{role} {voice}" for role, voice in VOICES.items())
    return [
        SpeechFile(
            c.audio.name,
            c.audio,
            "en",
            " ".join(c.turns),
            f"synthetic: espeak-ng ({voices}) reading PriMock57 {c.name.removeprefix('primock57_')}"
            + (f"; the {c.speaker}'s track, silent while the other speaks" if c.speaker else ""),
            c.turns,
        )
        for c in made
    ]


# --- offline baseline ---------------------------------------------------------------------------


def offline_transcribe(model: Any, audio: np.ndarray, language: str | None, beam_size: int) -> dict[str, Any]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    segments, info = model.transcribe(audio, language=language, beam_size=beam_size, vad_filter=True)
    texts = [s.text.strip() for s in segments]  # the generator does the work: time it to the end
    return {
        "text": " ".join(t for t in texts if t),
        "segments": len(texts),
        "language": info.language,
        "wall_s": round(time.perf_counter() - wall0, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
    }


# --- the run ------------------------------------------------------------------------------------


def median_offline_run(f: SpeechFile, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median error rate, with every run's rate beside it.

    transcribe() falls back to sampling at rising temperatures when a window fails its guards, so the
    same audio gives other words from one run to the next (on the dev consultation, greedy: 9.7% to
    11.4% WER over five runs); one run is not a baseline to be 5% within.
    """
    if f.reference is None:
        return runs[0] | {"runs": len(runs)}
    language = f.scoring_language
    reference = normalise_text(f.reference, language)
    metric = "cer" if language in CHARACTER_LANGUAGES else "wer"
    rated = []
    for i, run in enumerate(runs):
        rates = corpus_error_rates([reference], [normalise_text(run["text"], language)], language)
        rated.append((rates[metric] or 0.0, i))
    rated.sort()
    median_index = rated[(len(rated) - 1) // 2][1]
    return runs[median_index] | {"runs": len(runs), f"runs_{metric}": [round(e, 4) for e, _ in rated]}


def _rel(stream: float | None, offline: float | None) -> float | None:
    """Streaming error relative to offline: +0.05 = 5% more errors. None if offline made none."""
    if stream is None or offline is None or offline == 0:
        return None
    return round(stream / offline - 1, 4)


def score_file(f: SpeechFile, stream_text: str, offline: dict[int, dict[str, Any]]) -> dict[str, Any]:
    lang = f.scoring_language
    hyp = normalise_text(stream_text, lang)
    scores: dict[str, Any] = {}
    if f.reference is not None:
        ref = normalise_text(f.reference, lang)
        scores["stream_vs_ref"] = corpus_error_rates([ref], [hyp], lang)
        for beam, res in offline.items():
            scores[f"offline_b{beam}_vs_ref"] = corpus_error_rates(
                [ref], [normalise_text(res["text"], lang)], lang
            )
    for beam, res in offline.items():
        # Agreement with offline decoding: the only figure for files without an exact reference.
        scores[f"stream_vs_offline_b{beam}"] = corpus_error_rates(
            [normalise_text(res["text"], lang)], [hyp], lang
        )
    return scores


async def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from faster_whisper import WhisperModel, decode_audio

    from asr import RecognizerConfig, SpeechRecognizer
    from models.store import resolve_whisper_model

    shared = require_shared(args.shared)
    speech_dir = shared / "data" / "dev" / "speech"
    files = load_speech_files(speech_dir, args.files) + synthetic_consultations(
        shared, args.consultations, args.per_speaker
    )
    model_path = resolve_whisper_model(args.model)
    config = dataclasses.replace(RecognizerConfig(), cpu_threads=args.threads, **args.overrides)
    _, opencc_ok = to_simplified_chinese("")
    loop = asyncio.get_running_loop()

    results: dict[str, Any] = {
        "benchmark": "asr_stream",
        "machine": machine_info(),
        "versions": package_versions("faster-whisper", "ctranslate2", "numpy", "jiwer", "onnxruntime", "av"),
        "config": {
            "model": args.model,
            "model_path": str(model_path),
            "recognizer": dataclasses.asdict(config),
            "speed": args.speed,
            "chunk_ms": 1000 * CHUNK // SAMPLE_RATE,
            "trailing_silence_s": TRAILING_SILENCE_S,
            "offline_beams": args.offline_beams,
            "offline_runs": args.offline_runs,
            "noise_s": args.noise_s,
            "speech_regions": "offline Silero VAD (faster_whisper.vad), min_silence = recognizer silence_ms, "
            "no pad; the references have no timestamps",
            "chinese_traditional_to_simplified": opencc_ok,
        },
        "files": {},
        "noise": {},
    }
    audios = {
        f.name: np.tile(decode_audio(str(f.path), sampling_rate=SAMPLE_RATE), args.repeat) for f in files
    }
    if args.repeat > 1:  # a long session: the same speech again, scored against the reference again
        files = [
            dataclasses.replace(
                f,
                reference=" ".join([f.reference] * args.repeat) if f.reference else None,
                reference_turns=f.reference_turns * args.repeat,
            )
            for f in files
        ]

    with RssSampler(1.0) as rss:
        rss.label = "load"
        recognizer = await loop.run_in_executor(None, SpeechRecognizer, model_path, config)
        await loop.run_in_executor(None, recognizer.warm_up)
        runs: dict[str, StreamRun] = {}
        for f in files:
            rss.label = f.name
            langs = f.languages
            log.info(
                "streaming %s (%.1f s) at speed %s", f.name, len(audios[f.name]) / SAMPLE_RATE, args.speed
            )
            before = dataclasses.asdict(recognizer.stats())
            runs[f.name] = await stream_audio(
                recognizer,
                audios[f.name],
                language=langs[0] if len(langs) == 1 else None,
                allowed_languages=None if len(langs) == 1 else frozenset(langs),
                speed=args.speed,
            )
            after = dataclasses.asdict(recognizer.stats())
            runs[f.name].scheduler = {
                key: round(after[key] - before[key], 3) for key in SCHEDULER_COUNTERS
            } | {"held_by_second_pass_max_s_so_far": after["held_by_second_pass_max_s"]}
        noise_runs: dict[str, StreamRun] = {}
        if args.noise_s > 0:
            for kind in NOISE_KINDS:
                rss.label = f"noise:{kind}"
                log.info("streaming %s s of %s", args.noise_s, kind)
                noise_runs[kind] = await stream_audio(
                    recognizer,
                    make_noise(kind, args.noise_s),
                    language=None,  # detection on: the worst case for hallucinations
                    allowed_languages=None,
                    speed=args.speed,
                )
        await recognizer.aclose()
        rss.label = "streaming done"
        rss.sample()
        results["rss_mib"] = [{"t_s": t, "rss_mib": m, "phase": p} for t, m, p in rss.samples]
        stream_rss_end = len(rss.samples)

        offline: dict[str, dict[int, dict[str, Any]]] = {f.name: {} for f in files}
        offline_noise: dict[str, dict[str, Any]] = {}
        if args.offline_beams:
            rss.label = "offline"
            model = WhisperModel(
                str(model_path), device="cpu", compute_type=config.compute_type, cpu_threads=args.threads
            )
            for f in files:
                langs = f.languages
                for beam in args.offline_beams:
                    runs_of_beam = []
                    for i in range(args.offline_runs):
                        log.info("offline beam %d, run %d of %d: %s", beam, i + 1, args.offline_runs, f.name)
                        runs_of_beam.append(
                            offline_transcribe(
                                model, audios[f.name], langs[0] if len(langs) == 1 else None, beam
                            )
                        )
                    offline[f.name][beam] = median_offline_run(f, runs_of_beam)
            for kind in noise_runs:
                offline_noise[kind] = offline_transcribe(model, make_noise(kind, args.noise_s), None, 5)
        results["rss_mib_offline_phase_max"] = max(
            (m for _, m, _ in rss.samples[stream_rss_end:]), default=None
        )

    # Per-file metrics.
    for f in files:
        run = runs[f.name]
        audio_s = len(audios[f.name]) / SAMPLE_RATE
        finals = sorted((e for e in run.events if e["kind"] == "final"), key=lambda e: e["utterance_seq"])
        partials = [e for e in run.events if e["kind"] == "partial"]
        settled = sorted((e for e in run.events if e["kind"] == "settled"), key=lambda e: e["utterance_seq"])
        stream_text = " ".join(e["text"] for e in finals)
        settled_text = " ".join(e["text"] for e in settled if e["text"]) if settled else None
        regions = speech_regions(audios[f.name], config.silence_ms)
        speech_s = sum(e - s for s, e in regions) / SAMPLE_RATE
        latency = analyse_latency(run, regions, args.speed)
        file_rss = [m for _, m, p in rss.samples if p == f.name]
        results["files"][f.name] = {
            "language": f.language,
            "audio_s": round(audio_s, 2),
            "speech_s": round(speech_s, 2),
            "reference_note": f.reference_note,
            "scores": score_file(f, stream_text, offline[f.name])
            | (
                {f"settled_{k}": v for k, v in score_file(f, settled_text, offline[f.name]).items()}
                if settled_text is not None
                else {}
            ),
            "settled": len(settled),
            "erasure": erasure(finals, settled, f.scoring_language),
            "partial_flicker": flicker(run.events, f.scoring_language),
            "uncertain_finals": sum(1 for e in finals if e["uncertain"]),
            "uncertain_settled": sum(1 for e in settled if e["uncertain"]),
            **{k: v for k, v in latency.items() if not k.startswith("_")},
            "finals": len(finals),
            "partials": len(partials),
            "partials_per_speech_s": round(len(partials) / speech_s, 3) if speech_s else None,
            "partials_per_audio_s": round(len(partials) / audio_s, 3),
            "rtf_cpu": round(run.cpu_s / run.audio_s, 4),  # includes the trailing silence pushed
            "cpu_s": round(run.cpu_s, 2),
            "scheduler": run.scheduler,
            "second_pass_cpu_per_audio_s": (
                round(run.scheduler["second_pass_cpu_s"] / run.audio_s, 4) if run.scheduler else None
            ),
            "wall_s": round(run.wall_s, 2),
            "drain_s": round(run.drain_s, 3),
            "loadavg_1m_at_end": round(run.loadavg_1m, 2),
            "push_blocked_s": round(run.push_blocked_s, 3),
            "rss_mib": summarise(file_rss)
            | {
                "first": file_rss[0] if file_rss else None,
                "last": file_rss[-1] if file_rss else None,
            },
            "timings": _timing_summary(run.events),
            "offline": {
                b: {k: v for k, v in r.items()} | {"rtf_cpu": round(r["cpu_s"] / audio_s, 4)}
                for b, r in offline[f.name].items()
            },
            "stream_text": stream_text,
            "settled_text": settled_text,
            "stream_events": run.events,
            "latency_samples_s": latency["_samples"],
            "_final_lags": latency["_final_lags"],
            "_settled_lags": latency["_settled_lags"],
        }

    for kind, run in noise_runs.items():
        minutes = args.noise_s / 60
        partials = [e for e in run.events if e["kind"] == "partial"]
        finals = [e for e in run.events if e["kind"] == "final"]
        settled_lines = [e for e in run.events if e["kind"] == "settled" and e["text"]]
        results["noise"][kind] = {
            "seconds": args.noise_s,
            "partials_per_min": round(len(partials) / minutes, 2),
            "finals_per_min": round(len(finals) / minutes, 2),
            "settled_per_min": round(len(settled_lines) / minutes, 2),
            "rtf_cpu": round(run.cpu_s / run.audio_s, 4),
            "loadavg_1m_at_end": round(run.loadavg_1m, 2),
            "offline_b5_segments_per_min": (
                round(offline_noise[kind]["segments"] / minutes, 2) if kind in offline_noise else None
            ),
            "offline_b5_text": offline_noise[kind]["text"] if kind in offline_noise else None,
            "events": run.events,
        }

    results["overall"] = _overall(files, results, runs, opencc_ok)
    return results


def erasure(finals: list[dict[str, Any]], settled: list[dict[str, Any]], language: str) -> dict[str, Any]:
    """How much of what finals showed settling changed: words of the finals a settled event replaces
    that its text substitutes or drops (normalised as for WER), over all words the finals showed."""
    text_of = {e["utterance_seq"]: e["text"] for e in finals}
    shown = changed = 0
    lines_changed = 0
    for event in settled:
        before = normalise_text(" ".join(text_of.get(seq, "") for seq in event["replaces"]), language)
        after = normalise_text(event["text"], language)
        if language in CHARACTER_LANGUAGES:
            before, after = " ".join(before), " ".join(after)
        words = len(before.split())
        if not words:
            continue
        shown += words
        if after.split() == before.split():
            continue
        lines_changed += 1
        if not after.strip():
            changed += words
            continue
        measure = jiwer.process_words(before, after)
        changed += measure.substitutions + measure.deletions
    return {
        "words_shown_in_finals": shown,
        "words_changed": changed,
        "share": round(changed / shown, 4) if shown else None,
        "settled_lines_changed": lines_changed,
        "merges": sum(1 for e in settled if len(e["replaces"]) > 1),
        "removed": sum(1 for e in settled if not e["text"]),
    }


def flicker(events: list[dict[str, Any]], language: str) -> dict[str, Any]:
    """Partial-caption flicker: of the words a partial showed, the share the next partial or the final
    of the same utterance no longer shows in place (outside the common word prefix)."""
    shown: dict[int, list[list[str]]] = {}
    for e in events:
        if e["kind"] in ("partial", "final"):
            words = normalise_text(e["text"], language)
            units = list(words) if language in CHARACTER_LANGUAGES else words.split()
            shown.setdefault(e["utterance_seq"], []).append(units)
    total = changed = 0
    for displays in shown.values():
        for current, following in itertools.pairwise(displays):
            common = 0
            while common < min(len(current), len(following)) and current[common] == following[common]:
                common += 1
            total += len(current)
            changed += len(current) - common
    return {"partial_words": total, "changed": changed, "share": round(changed / total, 4) if total else None}


def _timing_summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Median/p90 of whatever numeric timings the engine attaches to transcripts (if any).

    Values that look like clock readings (epoch seconds) are meaningless on their own, so they are
    reported as seconds after the earliest clock reading of the same transcript (e.g. speech end ->
    recognised); plain durations are summarised as they are.
    """
    per_key: dict[str, list[float]] = {}
    for e in events:
        kind = e["kind"]
        numeric = {k: float(v) for k, v in e["timings"].items() if isinstance(v, int | float)}
        clocks = {k: v for k, v in numeric.items() if v > 1e8}
        origin = min(clocks.values(), default=0.0)
        for key, value in numeric.items():
            name = f"{kind}.{key}" + ("_after_earliest_s" if key in clocks else "")
            per_key.setdefault(name, []).append(value - origin if key in clocks else value)
    return {name: summarise(values) for name, values in sorted(per_key.items())}


def _overall(
    files: list[SpeechFile], results: dict[str, Any], runs: dict[str, StreamRun], opencc_ok: bool
) -> dict[str, Any]:
    per = results["files"]
    beams = sorted({b for r in per.values() for b in r["offline"]})
    overall: dict[str, Any] = {}
    # Pooled error rates: words over the space-delimited files, characters over every referenced file.
    scored = [f for f in files if f.reference is not None]
    word_files = [f for f in scored if f.scoring_language not in CHARACTER_LANGUAGES]
    for label, group, metric in (("wer_pooled", word_files, "wer"), ("cer_pooled", scored, "cer")):
        entry: dict[str, Any] = {"files": [f.name for f in group]}
        refs = [normalise_text(f.reference or "", f.scoring_language) for f in group]
        hyps = {"stream": [normalise_text(per[f.name]["stream_text"], f.scoring_language) for f in group]}
        if all(per[f.name]["settled_text"] is not None for f in group) and group:
            hyps["settled"] = [normalise_text(per[f.name]["settled_text"], f.scoring_language) for f in group]
        for b in beams:
            hyps[f"offline_b{b}"] = [
                normalise_text(per[f.name]["offline"][b]["text"], f.scoring_language) for f in group
            ]
        for name, h in hyps.items():
            # Character languages are pooled as characters: score them with the "zh" rule for CER.
            rates = corpus_error_rates(refs, h, "zh" if metric == "cer" else "en")
            entry[name] = None if rates[metric] is None else round(rates[metric], 4)
        for b in beams:
            entry[f"stream_relative_to_offline_b{b}"] = _rel(entry["stream"], entry[f"offline_b{b}"])
            if "settled" in hyps:
                entry[f"settled_relative_to_offline_b{b}"] = _rel(entry["settled"], entry[f"offline_b{b}"])
        if metric == "wer":
            entry.update(_relative_intervals(group, hyps))
            entry["by_utterance_length"] = _errors_by_utterance_length(group, per, hyps)
        overall[label] = entry
    first = [x for r in per.values() for x in r["latency_samples_s"]["first_partial"]]
    final = [x for r in per.values() for x in r["latency_samples_s"]["final"]]
    overall["first_partial_latency_s"] = summarise(first)
    overall["final_latency_s"] = summarise(final)
    overall["max_final_lag_s"] = max((r["final_lag_s"]["max"] or 0 for r in per.values()), default=None)
    overall["final_lag_s"] = summarise(x for r in per.values() for x in r["_final_lags"])
    overall["settled_lag_s"] = summarise(x for r in per.values() for x in r["_settled_lags"])
    for key in ("erasure", "partial_flicker"):
        numerator = "words_changed" if key == "erasure" else "changed"
        denominator = "words_shown_in_finals" if key == "erasure" else "partial_words"
        changed = sum(r[key][numerator] for r in per.values())
        shown = sum(r[key][denominator] for r in per.values())
        overall[key] = {
            numerator: changed,
            denominator: shown,
            "share": round(changed / shown, 4) if shown else None,
        }
    overall["erasure"] |= {
        name: sum(r["erasure"][name] for r in per.values())
        for name in ("settled_lines_changed", "merges", "removed")
    }
    audio = sum(r.audio_s for r in runs.values())
    overall["rtf_cpu"] = round(sum(r.cpu_s for r in runs.values()) / audio, 4) if audio else None
    speech = sum(r["speech_s"] for r in per.values())
    overall["partials_per_speech_s"] = (
        round(sum(r["partials"] for r in per.values()) / speech, 3) if speech else None
    )
    rss = [s["rss_mib"] for s in results["rss_mib"]]
    overall["rss_mib"] = {"max": max(rss, default=None), "last": rss[-1] if rss else None}
    noise = results["noise"]
    if noise:
        minutes = sum(n["seconds"] for n in noise.values()) / 60
        overall["hallucinations"] = {
            "non_speech_minutes": minutes,
            "partials_per_min": round(
                sum(n["partials_per_min"] * n["seconds"] / 60 for n in noise.values()) / minutes, 2
            ),
            "finals_per_min": round(
                sum(n["finals_per_min"] * n["seconds"] / 60 for n in noise.values()) / minutes, 2
            ),
            "settled_per_min": round(
                sum(n["settled_per_min"] * n["seconds"] / 60 for n in noise.values()) / minutes, 2
            ),
        }
    overall["chinese_traditional_to_simplified"] = opencc_ok
    return overall


def _relative_intervals(files: list[SpeechFile], hyps: dict[str, list[str]]) -> dict[str, Any]:
    """95% intervals of streaming's WER relative to each offline baseline, resampling reference turns
    (a file whose reference is one piece is one unit): whether a gap, or a target like "within 5%",
    is something this dev set can tell apart at all."""
    units = [[normalise_text(u, f.scoring_language) for u in f.reference_units] for f in files]
    errors = {
        name: [
            e
            for file_units, hyp in zip(units, texts, strict=True)
            for e in word_errors_per_unit(file_units, hyp)
        ]
        for name, texts in hyps.items()
    }
    intervals: dict[str, Any] = {"interval_units": sum(len(u) for u in units)}
    for ours in ("stream", "settled"):
        for name in hyps:
            if ours in hyps and name.startswith("offline"):
                interval = relative_error_interval(errors[ours], errors[name])
                intervals[f"{ours}_relative_to_{name}_interval95"] = list(interval) if interval else None
    return intervals


UTTERANCE_LENGTHS = ((2.0, "under 2 s"), (4.0, "2-4 s"), (8.0, "4-8 s"), (math.inf, "8 s and longer"))


def _errors_by_utterance_length(
    files: list[SpeechFile], per: dict[str, Any], hyps: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Streaming's and offline's word errors on the same reference words, grouped by the length of the
    streaming utterance those words fell in: where the gap between them sits. `hyps`: each file's
    normalised text per decoding, as pooled; streaming's is taken utterance by utterance here instead,
    to know where each word came from."""
    names = list(hyps)
    table = {
        label: {"utterances": 0, "reference_words": 0} | {f"{name}_errors": 0 for name in names}
        for _, label in UTTERANCE_LENGTHS
    }

    def label_of(event: dict[str, Any]) -> str:
        length = event["end_s"] - event["start_s"]
        return next(label for limit, label in UTTERANCE_LENGTHS if length < limit)

    for index, f in enumerate(files):
        finals = [e for e in per[f.name]["stream_events"] if e["kind"] == "final"]
        utterances = [normalise_text(e["text"], f.scoring_language) for e in finals]
        pieces = split_reference_by_utterance(
            normalise_text(f.reference or "", f.scoring_language), utterances
        )
        if not finals or not pieces:
            continue
        labels = [label_of(finals[utterance]) for utterance, _ in pieces]
        units = [text for _, text in pieces]
        texts = {name: per_file[index] for name, per_file in hyps.items()} | {"stream": " ".join(utterances)}
        for final in finals:
            table[label_of(final)]["utterances"] += 1
        for label, unit in zip(labels, units, strict=True):
            table[label]["reference_words"] += len(unit.split())
        for name, text in texts.items():
            for label, errors in zip(labels, word_errors_per_unit(units, text), strict=True):
                table[label][f"{name}_errors"] += errors
    for row in table.values():
        for name in names:
            words = row["reference_words"]
            row[f"{name}_wer"] = round(row[f"{name}_errors"] / words, 4) if words else None
    return table


# --- reporting ----------------------------------------------------------------------------------


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if pct:
        return f"{100 * value:.1f}%"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _fmt_interval(interval: list[float] | None) -> str:
    return f" [{100 * interval[0]:+.0f}% to {100 * interval[1]:+.0f}%]" if interval else ""


def print_table(results: dict[str, Any]) -> None:
    print(
        f"\nStreaming recognition - {results['machine']['cpu_model']}, "
        f"{results['machine']['usable_cpus']} cpus, speed {results['config']['speed']}"
    )
    header = (
        f"{'file':42} {'audio':>6} {'err':>4} {'stream':>7} {'off-b5':>7} {'off-b1':>7} {'vs-b5':>7} "
        f"{'1st-part med/p90':>17} {'final med/p90':>14} {'part/s':>6} {'rtf':>5} "
        f"{'lag max':>7} {'rss max':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results["files"].items():
        s = r["scores"]
        metric = "cer" if r["language"] in CHARACTER_LANGUAGES else "wer"
        stream = s.get("stream_vs_ref", {}).get(metric)
        b5 = s.get("offline_b5_vs_ref", {}).get(metric)
        b1 = s.get("offline_b1_vs_ref", {}).get(metric)
        agree = s.get("stream_vs_offline_b5", {}).get(metric)
        fp, fl = r["first_partial_latency_s"], r["final_latency_s"]
        print(
            f"{name[:42]:42} {r['audio_s']:>6.1f} {metric:>4} {_fmt(stream, True):>7} {_fmt(b5, True):>7} "
            f"{_fmt(b1, True):>7} {_fmt(agree, True):>7} "
            f"{_fmt(fp['median']) + '/' + _fmt(fp['p90']):>17} "
            f"{_fmt(fl['median']) + '/' + _fmt(fl['p90']):>14} "
            f"{_fmt(r['partials_per_speech_s']):>6} {r['rtf_cpu']:>5.2f} {_fmt(r['final_lag_s']['max']):>7} "
            f"{_fmt(r['rss_mib']['max']):>7}"
        )
    o = results["overall"]
    print("\n(err: error rate against the reference; vs-b5: streaming against offline beam 5 as reference;")
    print(" latencies in s; part/s: partials per second of speech; rtf: process CPU time / audio time)")
    for key in ("wer_pooled", "cer_pooled"):
        e = o[key]
        for ours in ("stream", "settled"):
            if ours not in e:
                continue
            rel = ", ".join(
                f"vs b{k.rsplit('b', 1)[1]} {_fmt(v, True)}" + _fmt_interval(e.get(f"{k}_interval95"))
                for k, v in e.items()
                if k.startswith(f"{ours}_rel") and not k.endswith("interval95")
            )
            if "interval_units" in e:
                rel += f" (95% intervals over {e['interval_units']} reference turns)"
            print(
                f"{key}: {'finals' if ours == 'stream' else 'settled'} {_fmt(e[ours], True)}, offline b5 "
                f"{_fmt(e.get('offline_b5'), True)}, offline b1 {_fmt(e.get('offline_b1'), True)}; "
                f"relative: {rel}"
            )
    fp, fl = o["first_partial_latency_s"], o["final_latency_s"]
    print(
        f"first partial latency: median {_fmt(fp['median'])} s, p90 {_fmt(fp['p90'])} s (n={fp['n']}); "
        f"final latency: median {_fmt(fl['median'])} s, p90 {_fmt(fl['p90'])} s (n={fl['n']}); "
        f"max final lag {_fmt(o['max_final_lag_s'])} s"
    )
    print(
        f"rtf (cpu) {_fmt(o['rtf_cpu'])}, partials per speech second {_fmt(o['partials_per_speech_s'])}, "
        f"rss max {_fmt(o['rss_mib']['max'])} MiB"
    )
    fg, sl = o["final_lag_s"], o["settled_lag_s"]
    print(
        f"end of utterance -> final: median {_fmt(fg['median'])} s, p95 {_fmt(fg['p95'])} s (n={fg['n']}); "
        f"-> settled: median {_fmt(sl['median'])} s, p95 {_fmt(sl['p95'])} s (n={sl['n']})"
    )
    held = [r["scheduler"] for r in results["files"].values() if r["scheduler"]]
    if held:
        total = {key: sum(h[key] for h in held) for key in SCHEDULER_COUNTERS}
        print(
            f"second pass: {total['second_pass_requests']:.0f} windows, {total['second_pass_cpu_s']:.1f} s "
            f"CPU; first-pass requests that waited for one: {total['held_by_second_pass']:.0f} "
            f"({total['finals_held_by_second_pass']:.0f} finals), "
            f"{total['held_by_second_pass_s']:.2f} s in all"
        )
    er, fl = o["erasure"], o["partial_flicker"]
    print(
        f"erasure: {_fmt(er['share'], True)} of {er['words_shown_in_finals']} words shown in finals changed "
        f"by settling ({er['settled_lines_changed']} lines changed, {er['merges']} merges, {er['removed']} "
        f"removed); partial flicker: {_fmt(fl['share'], True)} of {fl['partial_words']} partial words"
    )
    by_length = o["wer_pooled"].get("by_utterance_length")
    if by_length:
        print(
            "\nWER by the length of the streaming utterance the reference words fell in (same words for all)"
        )
        for label, row in by_length.items():
            offline = ", ".join(
                f"{key.removesuffix('_wer').replace('_', ' ')} {_fmt(value, True)}"
                for key, value in row.items()
                if key.startswith("offline") and key.endswith("_wer")
            )
            print(
                f"  {label:15} {row['utterances']:>5} utterances {row['reference_words']:>6} words  "
                f"stream {_fmt(row['stream_wer'], True):>6}  {offline}"
            )
    if results["noise"]:
        print("\nhallucinations (captions per minute of non-speech; target 0)")
        for kind, n in results["noise"].items():
            print(
                f"  {kind:14} partials/min {n['partials_per_min']:>5.1f}  "
                f"finals/min {n['finals_per_min']:>5.1f}  settled/min {n['settled_per_min']:>5.1f}  "
                f"offline b5 segments/min {_fmt(n['offline_b5_segments_per_min'])}"
            )


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = list(results["files"])
    short = [n.split(".")[0][:22] for n in files]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    for ax, key, title in (
        (axes[0][0], "first_partial", "speech onset -> first partial (s)"),
        (axes[0][1], "final", "end of speech -> final (s)"),
    ):
        data = [results["files"][n]["latency_samples_s"][key] or [np.nan] for n in files]
        ax.boxplot(data, tick_labels=short, showfliers=True)
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=30, labelsize=8)
        ax.grid(alpha=0.3)
    ax = axes[1][0]
    rss = results["rss_mib"]
    ax.plot([s["t_s"] for s in rss], [s["rss_mib"] for s in rss], lw=1)
    previous = None
    for s in rss:
        if s["phase"] != previous:
            ax.axvline(s["t_s"], color="grey", lw=0.5, ls=":")
            ax.text(
                s["t_s"],
                ax.get_ylim()[0],
                s["phase"].split(".")[0][:18],
                rotation=90,
                fontsize=6,
                va="bottom",
            )
            previous = s["phase"]
    ax.set_title("process RSS over time (MiB, sampled every second)")
    ax.set_xlabel("s")
    ax.grid(alpha=0.3)
    ax = axes[1][1]
    x = np.arange(len(files))
    for offset, (label, key) in zip(
        (-0.27, 0, 0.27),
        (
            ("streaming", "stream_vs_ref"),
            ("offline b5", "offline_b5_vs_ref"),
            ("offline b1", "offline_b1_vs_ref"),
        ),
        strict=True,
    ):
        values = []
        for n in files:
            metric = "cer" if results["files"][n]["language"] in CHARACTER_LANGUAGES else "wer"
            v = results["files"][n]["scores"].get(key, {}).get(metric)
            values.append(np.nan if v is None else 100 * v)
        ax.bar(x + offset, values, width=0.27, label=label)
    ax.set_xticks(x, short, rotation=30, fontsize=8)
    ax.set_title("error rate vs reference (%: WER, CER for zh)")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(
        f"BabelCall streaming ASR - {results['config']['model']} "
        f"{results['config']['recognizer']['compute_type']}, "
        f"{results['machine']['usable_cpus']} cpus, speed {results['config']['speed']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _recognizer_overrides(parser: argparse.ArgumentParser, settings: list[str]) -> dict[str, Any]:
    from asr import RecognizerConfig
    from server.config import ConfigError, convert_field

    # The server's own parsing of settings, so "--set speculative_finals=false" means false.
    known = {f.name: f for f in dataclasses.fields(RecognizerConfig)}
    overrides: dict[str, Any] = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        if name not in known or not value:
            parser.error(f"--set {setting}: expected FIELD=VALUE with a RecognizerConfig field")
        try:
            overrides[name] = convert_field(known[name], value)
        except ConfigError as error:
            parser.error(f"--set {setting}: {error}")
    return overrides


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.asr_stream", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--files",
        nargs="*",
        help="speech file names in <shared>/data/dev/speech (default: all; none after it: only the "
        "--consultations)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="1.0 = real time (recorded figures); N = N times faster; 0 = as fast as possible",
    )
    parser.add_argument(
        "--consultations",
        type=int,
        default=0,
        help="also stream N more PriMock57 consultations read by espeak-ng (about 10 min each; made once "
        "into bench/out/consultations)",
    )
    parser.add_argument(
        "--per-speaker",
        action="store_true",
        help="stream each of the --consultations as two tracks, one per speaker, as BabelCall hears a "
        "call (each microphone its own stream), instead of both voices in one",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/asr_stream"))
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument(
        "--model", default="base", help="'base' (built-in) or a CTranslate2 Whisper directory"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="CTranslate2 cpu_threads (streaming and offline)"
    )
    parser.add_argument(
        "--offline-beams", type=int, nargs="*", default=[5, 1], help="offline baselines to run"
    )
    parser.add_argument(
        "--offline-runs",
        type=int,
        default=3,
        help="offline runs per beam and file; the median one is the baseline (sampling fallback varies)",
    )
    parser.add_argument(
        "--noise-s", type=float, default=60.0, help="seconds of each non-speech signal (0: skip)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="stream each file this many times back to back in one stream (long-session soak)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a RecognizerConfig field, e.g. --set beam_size=5 --set context_s=0 (repeatable)",
    )
    args = parser.parse_args(argv)
    args.overrides = _recognizer_overrides(parser, args.settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The engine logs at DEBUG/INFO without transcript text; keep its warnings only, the table is the output.
    logging.getLogger("asr").setLevel(logging.WARNING)
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)

    results = asyncio.run(run_benchmark(args))
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, args.out / "results.png")
    write_json(args.out / "results.json", results)
    print_table(results)
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'results.png'}")


if __name__ == "__main__":
    main()
