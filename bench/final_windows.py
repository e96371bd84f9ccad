"""How long a final's short encoder window should be at least: recorded finals decoded again, alone.

    python -m bench.final_windows --run bench/out/asr_stream/results.json [MORE.json ...]
        [--min-window-s 0 10 ...] [--max-final-s 8] [--out bench/out/final_windows]

Finals are encoded in a window cut to the utterance plus 3 s (asr_short_final_windows), which Whisper,
trained on 30 s windows, was not trained on; a final the window leaves under the guards is decoded again
in the full window. This takes the finals of recorded `bench.asr_stream` runs that are shorter than
--max-final-s, cuts their audio as the segmenter did, decodes each as a first-pass final with each
minimum window length (0: the utterance plus 3 s), and reports per setting the word errors on the
reference words those finals hold (the reference cut where the recorded finals fall, as asr_stream's
table by utterance length cuts it), how many went on to the full window, and decode times.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from bench.asr_stream import SAMPLE_RATE
from bench.common import (
    DEFAULT_SHARED,
    machine_info,
    normalise_text,
    package_versions,
    require_shared,
    split_reference_by_utterance,
    summarise,
    word_errors_per_unit,
    write_json,
)
from bench.settle_replay import final_audio, recorded_files

log = logging.getLogger("bench.final_windows")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.final_windows", description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, nargs="+", help="bench.asr_stream results.json")
    parser.add_argument("--min-window-s", type=float, nargs="+", default=[0.0, 6.0, 8.0, 10.0, 12.0, 15.0])
    parser.add_argument(
        "--max-final-s", type=float, default=8.0, help="finals at least this long are left out"
    )
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--model", default="base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/out/final_windows"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)

    from faster_whisper import WhisperModel, decode_audio

    from asr.decoder import DecodeTask, WhisperDecoder
    from models.store import resolve_whisper_model

    class CountingDecoder(WhisperDecoder):
        """Counts the finals that went on to the full window."""

        full_window_finals = 0

        def _decode_group(self, tasks: list[DecodeTask], short_window: bool) -> Any:
            if not short_window and tasks[0].final:
                self.full_window_finals += len(tasks)
            return super()._decode_group(tasks, short_window)

    shared = require_shared(args.shared)
    recorded: dict[str, list[dict[str, Any]]] = {}
    for path in args.run:
        for name, entry in json.loads(path.read_text(encoding="utf-8"))["files"].items():
            finals = [e for e in entry["stream_events"] if e["kind"] == "final"]
            recorded.setdefault(name, sorted(finals, key=lambda e: e["utterance_seq"]))
    files = [f for f in recorded_files(shared, recorded) if f.reference is not None]
    # (file, index of the final among the file's finals, its audio)
    short: list[tuple[str, int, Any]] = []
    for f in files:
        audio = decode_audio(str(f.path), sampling_rate=SAMPLE_RATE)
        previous_end_s = None
        for index, event in enumerate(recorded[f.name]):
            cut = final_audio(audio, event, previous_end_s)
            previous_end_s = event["end_s"]
            if event["end_s"] - event["start_s"] < args.max_final_s:
                short.append((f.name, index, cut))
    short_finals = {(name, index) for name, index, _ in short}
    languages = {f.name: f.scoring_language for f in files}
    log.info("%d finals under %.1f s in %d files", len(short), args.max_final_s, len(files))
    model = WhisperModel(
        str(resolve_whisper_model(args.model)), device="cpu", compute_type="int8", cpu_threads=args.threads
    )
    results: dict[str, Any] = {
        "benchmark": "final_windows",
        "machine": machine_info(),
        "versions": package_versions("faster-whisper", "ctranslate2", "numpy", "jiwer"),
        "config": {"runs": [str(p) for p in args.run], "max_final_s": args.max_final_s, "files": len(files)},
        "finals": len(short),
        "settings": [],
    }
    # The reference cut where the recorded finals fall, once: every setting is scored on the same words.
    # Per file: its name, its recorded finals' texts, the reference units, and which units are the
    # short finals' (re-decoded and scored).
    scoring: list[tuple[str, list[str], list[str], list[bool]]] = []
    recorded_errors = words = 0
    for f in files:
        as_recorded = [normalise_text(e["text"], f.scoring_language) for e in recorded[f.name]]
        pieces = split_reference_by_utterance(
            normalise_text(f.reference or "", f.scoring_language), as_recorded
        )
        units = [unit for _, unit in pieces]
        mine = [(f.name, owner) in short_finals for owner, _ in pieces]
        words += sum(len(unit.split()) for unit, m in zip(units, mine, strict=True) if m)
        recorded_errors += _charged(units, as_recorded, mine)
        scoring.append((f.name, as_recorded, units, mine))
    for minimum in args.min_window_s:
        decoder = CountingDecoder(model, 1, short_final_windows=True, short_final_window_min_s=minimum)
        texts: dict[tuple[str, int], str] = {}
        decode_s: list[float] = []
        for name, index, cut in short:
            started = time.perf_counter()
            [decoded] = decoder.decode_batch([DecodeTask(cut, True, "en", None, False)])
            decode_s.append(time.perf_counter() - started)
            texts[(name, index)] = normalise_text(decoded.text, languages[name])
        errors = 0
        for name, as_recorded, units, mine in scoring:
            redecoded = [texts.get((name, i), text) for i, text in enumerate(as_recorded)]
            errors += _charged(units, redecoded, mine)
        setting = {
            "min_window_s": minimum,
            "wer": round(errors / words, 4) if words else None,
            "recorded_wer": round(recorded_errors / words, 4) if words else None,
            "reference_words": words,
            "full_window_finals": decoder.full_window_finals,
            "decode_s": summarise(decode_s),
        }
        results["settings"].append(setting)
        d = setting["decode_s"]
        print(
            f"min window {minimum:4.1f} s: WER {100 * (setting['wer'] or 0):.1f}% "
            f"(as recorded {100 * (setting['recorded_wer'] or 0):.1f}%, {words} words), "
            f"{decoder.full_window_finals} of {len(short)} to the full window, "
            f"decode p50 {d['median']:.3f} p95 {d['p95']:.3f} max {d['max']:.3f} s",
            flush=True,
        )
    write_json(args.out / "results.json", results)
    print(f"wrote {args.out / 'results.json'}")


def _charged(units: list[str], utterances: list[str], mine: list[bool]) -> int:
    """Word errors of the utterances joined, charged to the reference units marked as the short finals'."""
    errors = word_errors_per_unit(units, " ".join(utterances))
    return sum(e for e, m in zip(errors, mine, strict=True) if m)


if __name__ == "__main__":
    main()
