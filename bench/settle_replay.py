"""Second-pass replay: a recorded run's finals settled again, offline, under the real-time window rule.

    python -m bench.settle_replay --run bench/out/asr_stream/results.json [--offline OTHER.json]
        [--set FIELD=VALUE ...] [--decode-s 2.0] [--out bench/out/settle_replay]

`bench.asr_stream` takes tens of minutes per setting on 2 cores, almost all of it the first pass, which
the second pass does not change: at --speed 0 its finals come out word for word the same from run to run.
This replays those finals (their text and times from the run's results.json, their audio cut from the
file as the segmenter cuts it) through asr.settle.SecondPass, decoding each window with the real model,
and scores the settled text as bench.asr_stream does (pooled WER, against the offline baseline of the same
or another results.json, with the bootstrap interval over reference turns).

Windows are composed as a quiet real-time machine would compose them, which --speed 0 does not: there the
segmenter runs minutes ahead of the decoder, so when a window is due several turns are queued and go into
it together, and settled text comes out more accurate than it would in a call. Here, stream time advances
in 50 ms steps; a final arrives silence_ms plus --first-pass-s after its speech ended; the stream is in
speech from an utterance's start to the end of its closing silence; a window starts as soon as it is due
and none is being decoded (on a CPU the second pass has a lane of its own), and takes --decode-s of stream
time. End of utterance -> settled is estimated from that rule (stream seconds, not measured wall time).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bench.asr_stream import (
    SAMPLE_RATE,
    SpeechFile,
    _recognizer_overrides,
    _rel,
    _relative_intervals,
    load_speech_files,
    synthetic_consultations,
)
from bench.common import (
    DEFAULT_SHARED,
    corpus_error_rates,
    machine_info,
    normalise_text,
    package_versions,
    require_shared,
    summarise,
    write_json,
)

log = logging.getLogger("bench.settle_replay")

STEP_S = 0.05


def final_audio(audio: np.ndarray, event: dict[str, Any], previous_end_s: float | None) -> np.ndarray:
    """The final's audio as the segmenter cut it: its preroll windows before the speech (none after a
    cut at max_utterance_s, which starts where the previous piece ended) and the trailing pad after."""
    from asr.segmenter import PAD_S
    from asr.vad import WINDOW

    pad = int(PAD_S * SAMPLE_RATE)
    preroll = max(1, pad // WINDOW) * WINDOW
    start = round(event["start_s"] * SAMPLE_RATE)
    end = round(event["end_s"] * SAMPLE_RATE)
    cut = previous_end_s is not None and abs(previous_end_s - event["start_s"]) < 1e-3
    begin = start if cut else max(0, start - preroll)
    return audio[begin : min(len(audio), end + pad)]


def recorded_files(shared: Path, names: Iterable[str]) -> list[SpeechFile]:
    """The speech files of a recorded bench.asr_stream run, by name: dev files and generated tracks."""
    names = set(names)
    dev = load_speech_files(shared / "data" / "dev" / "speech", None)
    # The run streamed the first N generated consultations, per speaker: the same N, already made.
    count = len({name.split(".")[0] for name in names if name.startswith("primock57_")})
    generated = synthetic_consultations(shared, count, per_speaker=True)
    return [f for f in [*dev, *generated] if f.name in names]


def replay_file(
    decoder: Any,
    config: Any,
    audio: np.ndarray,
    finals: list[dict[str, Any]],
    *,
    decode_s: float,
    first_pass_s: float,
) -> dict[str, Any]:
    from asr.config import SpeechEvent, SpeechEventKind
    from asr.settle import SecondPass

    second_pass = SecondPass(config, shed_backlog=False)
    silence_s = config.silence_ms / 1000
    events: list[SpeechEvent] = []
    arrivals: list[tuple[float, SpeechEvent, np.ndarray]] = []
    speaking: list[tuple[float, float]] = []
    previous_end: float | None = None
    for event in finals:
        cut = previous_end is not None and abs(previous_end - event["start_s"]) < 1e-3
        closes = event["end_s"] + (0.0 if cut else silence_s)
        speech_event = SpeechEvent(
            SpeechEventKind.FINAL,
            event["utterance_seq"],
            event["text"],
            len(event["text"]),
            event["language"],
            event["start_s"],
            event["end_s"],
        )
        arrivals.append((closes + first_pass_s, speech_event, final_audio(audio, event, previous_end)))
        speaking.append((event["start_s"], closes))
        previous_end = event["end_s"]
    settled_at: dict[int, float] = {}
    windows: list[dict[str, Any]] = []
    cpu_s = 0.0
    in_flight: tuple[Any, Any, float] | None = None  # window, result, when it is done
    audio_s = len(audio) / SAMPLE_RATE
    t = 0.0
    arrival = 0
    while True:
        finishing = t >= audio_s + 2.0
        while arrival < len(arrivals) and arrivals[arrival][0] <= t:
            second_pass.add(arrivals[arrival][1], arrivals[arrival][2])
            arrival += 1
        in_speech = any(start <= t < end for start, end in speaking)
        second_pass.heard(int(t * SAMPLE_RATE), in_speech)
        if in_flight is not None and in_flight[2] <= t:
            window, result, _ = in_flight
            in_flight = None
            for settled in second_pass.settle(window, result, {}):
                events.append(settled)
                for seq in settled.replaces:
                    settled_at[seq] = t
        # A window starts as soon as it is due and none is being decoded.
        due = (
            None
            if in_flight is not None
            else second_pass.next_window(
                english_wanted=False, glossary=(), finishing=finishing and arrival == len(arrivals)
            )
        )
        if due is not None:
            started = time.process_time()
            [result] = decoder.decode_batch([due.task])
            spent = time.process_time() - started
            cpu_s += spent
            windows.append(
                {
                    "context_s": round(sum(len(c.audio) for c in due.context) / SAMPLE_RATE, 2),
                    "at_s": round(t, 2),
                    "audio_s": round(len(due.task.audio) / SAMPLE_RATE, 2),
                    "finals": len(due.finals),
                    "settles": due.settles,
                    "cpu_s": round(spent, 3),
                }
            )
            in_flight = (due, result, t + decode_s)
        if finishing and arrival == len(arrivals) and not second_pass.unsettled and in_flight is None:
            break
        t = round(t + STEP_S, 4)
    lags = [settled_at[e["utterance_seq"]] - e["end_s"] for e in finals if e["utterance_seq"] in settled_at]
    return {
        "settled_text": " ".join(e.text for e in events if e.text),
        "settled_lines": [{"replaces": list(e.replaces), "text": e.text} for e in events],
        "windows": windows,
        "second_pass_cpu_s": round(cpu_s, 2),
        "second_pass_cpu_per_audio_s": round(cpu_s / audio_s, 4),
        "settled_lag_s": summarise(lags),
        "_lags": lags,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.settle_replay", description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, nargs="+", help="bench.asr_stream results.json")
    parser.add_argument(
        "--offline", type=Path, nargs="*", default=[], help="results.json files holding the offline baseline"
    )
    parser.add_argument("--beam", type=int, default=1, help="the offline baseline's beam")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--model", default="base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decode-s", type=float, default=2.0, help="stream seconds one window takes")
    parser.add_argument(
        "--first-pass-s", type=float, default=0.4, help="stream seconds from closing silence to final"
    )
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--out", type=Path, default=Path("bench/out/settle_replay"))
    args = parser.parse_args(argv)
    overrides = _recognizer_overrides(parser, args.settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)

    from faster_whisper import WhisperModel, decode_audio

    from asr import RecognizerConfig
    from asr.decoder import WhisperDecoder
    from models.store import resolve_whisper_model

    shared = require_shared(args.shared)
    recorded: dict[str, dict[str, Any]] = {}
    offline: dict[str, str] = {}
    for path in [*args.run, *args.offline]:
        data = json.loads(path.read_text(encoding="utf-8"))
        for name, entry in data["files"].items():
            if path in args.run and name not in recorded:
                recorded[name] = entry
            baseline = entry["offline"].get(str(args.beam))
            if baseline is not None and name not in offline:
                offline[name] = baseline["text"]
    if not set(recorded) & set(offline):
        # Checked before the minutes of replay, which could not be scored.
        parser.error(
            f"no offline beam-{args.beam} text for the recorded files: give --offline a run that has it "
            "(bench.asr_stream --offline-beams)"
        )
    files = recorded_files(shared, recorded)
    config = dataclasses.replace(RecognizerConfig(), cpu_threads=args.threads, **overrides)
    model = WhisperModel(
        str(resolve_whisper_model(args.model)), device="cpu", compute_type="int8", cpu_threads=args.threads
    )
    decoder = WhisperDecoder(model, config.beam_size, window_beam_size=config.settle_beam_size)
    results: dict[str, Any] = {
        "benchmark": "settle_replay",
        "machine": machine_info(),
        "versions": package_versions("faster-whisper", "ctranslate2", "numpy", "jiwer"),
        "config": {
            "runs": [str(p) for p in args.run],
            "recognizer": dataclasses.asdict(config),
            "decode_s": args.decode_s,
            "first_pass_s": args.first_pass_s,
        },
        "files": {},
    }
    for f in files:
        log.info("replaying %s", f.name)
        audio = decode_audio(str(f.path), sampling_rate=SAMPLE_RATE)
        finals = sorted(
            (e for e in recorded[f.name]["stream_events"] if e["kind"] == "final"),
            key=lambda e: e["utterance_seq"],
        )
        replayed = replay_file(
            decoder, config, audio, finals, decode_s=args.decode_s, first_pass_s=args.first_pass_s
        )
        replayed["finals_text"] = " ".join(e["text"] for e in finals)
        replayed["audio_s"] = len(audio) / SAMPLE_RATE
        results["files"][f.name] = replayed

    per = results["files"]
    scored = [f for f in files if f.reference is not None and f.name in offline]
    refs = [normalise_text(f.reference or "", f.scoring_language) for f in scored]
    hyps = {
        "stream": [normalise_text(per[f.name]["finals_text"], f.scoring_language) for f in scored],
        "settled": [normalise_text(per[f.name]["settled_text"], f.scoring_language) for f in scored],
        f"offline_b{args.beam}": [normalise_text(offline[f.name], f.scoring_language) for f in scored],
    }
    overall: dict[str, Any] = {"files": [f.name for f in scored]}
    for name, texts in hyps.items():
        overall[name] = round(corpus_error_rates(refs, texts, "en")["wer"] or 0.0, 4)
        for f, ref, text in zip(scored, refs, texts, strict=True):
            per[f.name][f"{name}_wer"] = round(corpus_error_rates([ref], [text], "en")["wer"] or 0.0, 4)
    overall["settled_relative"] = _rel(overall["settled"], overall[f"offline_b{args.beam}"])
    overall["stream_relative"] = _rel(overall["stream"], overall[f"offline_b{args.beam}"])
    overall |= _relative_intervals(scored, hyps)
    audio_total = sum(per[f.name]["audio_s"] for f in files)
    overall["second_pass_cpu_per_audio_s"] = round(
        sum(per[f.name]["second_pass_cpu_s"] for f in files) / audio_total, 4
    )
    overall["windows"] = sum(len(per[f.name]["windows"]) for f in files)
    overall["window_audio_s"] = summarise(w["audio_s"] for f in files for w in per[f.name]["windows"])
    overall["settled_lag_s"] = summarise(x for f in files for x in per[f.name].pop("_lags"))
    results["overall"] = overall
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", results)
    for f in scored:
        r = per[f.name]
        print(
            f"{f.name:45s} finals {r['stream_wer']:.1%}  settled {r['settled_wer']:.1%}  "
            f"offline {r[f'offline_b{args.beam}_wer']:.1%}  windows {len(r['windows'])}"
        )
    interval = overall.get(f"settled_relative_to_offline_b{args.beam}_interval95")
    print(
        f"pooled: finals {overall['stream']:.1%}, settled {overall['settled']:.1%}, offline "
        f"{overall[f'offline_b{args.beam}']:.1%}; settled vs offline {overall['settled_relative']:+.0%} "
        f"{[f'{x:+.0%}' for x in interval] if interval else ''}"
    )
    lag = overall["settled_lag_s"]
    print(
        f"second pass CPU per audio s {overall['second_pass_cpu_per_audio_s']}, {overall['windows']} windows "
        f"(audio median {overall['window_audio_s']['median']} s); end of utterance -> settled (window rule, "
        f"decode {args.decode_s} s): median {lag['median']} s, p95 {lag['p95']} s"
    )
    print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
