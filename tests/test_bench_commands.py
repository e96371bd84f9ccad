"""The benchmarks run from their documented commands: bench.load starts a server on the embedded
defaults, connects a speaker and a listener over WebRTC, and writes what it measured; bench.asr_stream
streams a short file through the recogniser and scores it. The figures themselves are not judged here
(benchmarks report, tests assert): that there are figures, for what really happened, is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(module: str, out: Path, *args: str, plots: bool = True) -> dict[str, Any]:
    """Run `python -m <module> ... --out <out>` from the repository root; its results.json."""
    command = [sys.executable, "-m", module, *args, "--out", str(out)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    if plots:
        assert (out / "results.png").stat().st_size > 0
    report: dict[str, Any] = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return report


def jfk_reference_words(shared_dir: Path) -> list[str]:
    from bench.asr_stream import load_speech_files
    from bench.common import normalise_text

    (jfk,) = load_speech_files(shared_dir / "data" / "dev" / "speech", ["en_jfk.flac"])
    return normalise_text(jfk.reference or "", "en").split()


def test_the_load_benchmark_measures_a_short_call(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "load"
    options = ["--speakers", "1", "--listeners", "1", "--seconds", "12", "--linger", "4", "--processes", "1"]
    report = run_benchmark("bench.load", out, *options)
    (level,) = report["levels"]
    assert level["speakers"] == 1 and level["failed_rooms"] == 0
    # Every utterance that ended in a pause was measured for both readers (the speaker and the listener).
    latency = level["end_to_final_s"]
    assert latency["n"] >= 2 and latency["n"] % 2 == 0 and 0 < latency["p50"] <= latency["p95"]
    assert {"recognition", "translation", "delivery"} <= level["stages_p50_s"].keys()
    assert level["server_cpu_per_audio_s"] > 0 and level["media_workers_cpu_per_audio_s"] > 0
    assert level["early_translations"] == {"used": 0, "wasted": 0}  # no translation model installed
    assert level["server_loop_lag"] is not None  # /metrics was read
    assert "BabelCall is ready" in (out / "server.log").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_streaming_benchmark_scores_a_short_file(shared_dir: Path, tmp_path: Path) -> None:
    options = ["--files", "en_jfk.flac", "--speed", "0", "--offline-beams", "1", "--offline-runs", "3"]
    report = run_benchmark("bench.asr_stream", tmp_path / "asr", *options, "--noise-s", "5")
    jfk = report["files"]["en_jfk.flac"]
    assert jfk["finals"] >= 1 and jfk["scores"]["stream_vs_ref"]["wer"] is not None
    # The baseline is the median of the offline runs, each of which is reported.
    offline = jfk["offline"]["1"]
    rates = offline["runs_wer"]
    assert offline["runs"] == 3 and len(rates) == 3 and rates == sorted(rates)
    assert jfk["scores"]["offline_b1_vs_ref"]["wer"] == pytest.approx(rates[1], abs=1e-4)
    assert set(report["noise"]) == {"silence", "white", "pink", "room_keyboard"}
    pooled = report["overall"]["wer_pooled"]
    assert pooled["interval_units"] == 1  # JFK's reference is one piece: one unit to resample
    assert "stream_relative_to_offline_b1_interval95" in pooled
    # Every reference word is charged to one utterance length, and the errors add up to the WER.
    rows = pooled["by_utterance_length"].values()
    words = sum(row["reference_words"] for row in rows)
    assert words == len(jfk_reference_words(shared_dir))
    assert sum(row["stream_errors"] for row in rows) / words == pytest.approx(pooled["stream"], abs=0.01)


def test_files_with_no_names_leave_only_the_consultations(shared_dir: Path) -> None:
    """`--files` alone streams no dev file, so `--consultations N --per-speaker` can be pooled alone."""
    from bench.asr_stream import load_speech_files

    speech_dir = shared_dir / "data" / "dev" / "speech"
    assert load_speech_files(speech_dir, []) == []
    every = {f.name for f in load_speech_files(speech_dir, None)}
    assert {"en_jfk.flac", "en_synthetic_consultation_day1_01.flac"} <= every


@pytest.mark.slow
def test_the_final_window_benchmark_decodes_a_runs_finals_again(shared_dir: Path, tmp_path: Path) -> None:
    streamed = ["--files", "en_jfk.flac", "--speed", "0", "--offline-beams", "--noise-s", "0"]
    stream = run_benchmark("bench.asr_stream", tmp_path / "asr", *streamed)
    finals = [e for e in stream["files"]["en_jfk.flac"]["stream_events"] if e["kind"] == "final"]
    options = ["--run", str(tmp_path / "asr" / "results.json"), "--max-final-s", "30"]
    options += ["--min-window-s", "0", "10"]
    report = run_benchmark("bench.final_windows", tmp_path / "windows", *options, plots=False)
    # Every final of the run was decoded again with each setting, and scored on all of JFK's words.
    assert report["finals"] == len(finals) >= 1
    assert [s["min_window_s"] for s in report["settings"]] == [0.0, 10.0]
    for setting in report["settings"]:
        assert setting["reference_words"] == len(jfk_reference_words(shared_dir))
        assert setting["decode_s"]["n"] == len(finals)
        assert setting["wer"] is not None and setting["recorded_wer"] == report["settings"][0]["recorded_wer"]
