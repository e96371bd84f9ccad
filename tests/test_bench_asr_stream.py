"""The streaming-recognition benchmark (bench/asr_stream.py) runs from its documented command on a
short file and writes its figures; the figures themselves are reported, not judged, here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_the_streaming_benchmark_scores_a_short_file(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "asr"
    command = [sys.executable, "-m", "bench.asr_stream", "--files", "en_jfk.flac", "--speed", "0"]
    command += ["--offline-beams", "1", "--offline-runs", "3", "--noise-s", "5", "--out", str(out)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]

    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    jfk = report["files"]["en_jfk.flac"]
    assert jfk["finals"] >= 1 and jfk["scores"]["stream_vs_ref"]["wer"] is not None
    # The baseline is the median of the offline runs, each of which is reported.
    offline = jfk["offline"]["1"]
    rates = offline["runs_wer"]
    assert offline["runs"] == 3 and len(rates) == 3 and rates == sorted(rates)
    assert jfk["scores"]["offline_b1_vs_ref"]["wer"] == pytest.approx(rates[1], abs=1e-4)
    assert set(report["noise"]) == {"silence", "white", "pink", "room_keyboard"}
    assert report["overall"] and (out / "results.png").stat().st_size > 0
