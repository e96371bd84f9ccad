"""The operators' benchmark (bench/load.py) runs end to end from its documented command: it starts a
server on the embedded defaults, connects a speaker and a listener over WebRTC, and writes what it
measured. The figures themselves are not judged here (benchmarks report, tests assert): that there are
figures, for the captions the call really produced, is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_load_benchmark_measures_a_short_call(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "load"
    command = [sys.executable, "-m", "bench.load", "--speakers", "1", "--listeners", "1"]
    command += ["--seconds", "12", "--linger", "4", "--processes", "1", "--out", str(out)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]

    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    (level,) = report["levels"]
    assert level["speakers"] == 1 and level["failed_rooms"] == 0
    # Every utterance that ended in a pause was measured for both readers (the speaker and the listener).
    latency = level["end_to_final_s"]
    assert latency["n"] >= 2 and latency["n"] % 2 == 0 and 0 < latency["p50"] <= latency["p95"]
    assert {"recognition", "translation", "delivery"} <= level["stages_p50_s"].keys()
    assert level["server_cpu_per_audio_s"] > 0 and level["media_workers_cpu_per_audio_s"] > 0
    assert level["early_translations"] == {"used": 0, "wasted": 0}  # no translation model installed
    assert level["server_loop_lag"] is not None  # /metrics was read
    assert (out / "results.png").stat().st_size > 0
    assert "BabelCall is ready" in (out / "server.log").read_text(encoding="utf-8")
