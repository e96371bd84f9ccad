"""The operators' benchmark: how long after a person stops speaking do listeners read the caption,
and how many people can speak at once before that number breaks.

For each N in --speakers it opens N rooms, each with one speaker (a headless participant speaking a
real recording in real time over WebRTC) and --listeners listeners reading different languages, and
measures per utterance and listener: end of speech → final caption received, speech onset → first
partial, and the server's per-stage breakdown (CaptionEvent.timings). It stops the sweep when p95
latency exceeds --break-s. Results: <out>/results.json and <out>/results.png.

    python -m bench.load                        # starts a server on the embedded defaults (CPU)
    python -m bench.load --speakers 1,2,4,8,16,32,64 --server-env BABELCALL_ASR_DEVICE=cuda ...
    python -m bench.load --url http://host:8080 --admin-email admin@example.org   # a running server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from participant.rest import RestClient
from protocol.captions import CaptionKind
from server.metrics import STAGES, probe_loop_lag

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared"
PASSWORD = "benchmark password 1"
LISTENER_LANGUAGES = ("fr", "es", "ar", "zh", "ja", "ru", "tr", "vi", "th", "id")


# --------------------------------------------------------------------------- accounts and rooms


def ensure_member(base_url: str, admin: RestClient, email: str, name: str) -> None:
    """Apply and approve (idempotent: an existing member with the benchmark password is reused)."""
    member = RestClient(base_url)
    status, body = member.call("POST", "/api/apply", {"name": name, "email": email, "password": PASSWORD})
    if status == 201 and body["member"]["status"] == "pending":
        status, body = admin.call("POST", f"/api/admin/members/{body['member']['id']}/approve")
        if status != 200:
            raise SystemExit(f"cannot approve {email}: {body}")
    elif status not in (201, 409):
        raise SystemExit(f"cannot create {email}: {body}")


def create_admin(env: dict[str, str], email: str) -> None:
    """The administrator of a server this benchmark starts, as a scripted install makes it (kept when
    the data directory is reused)."""
    created = subprocess.run(
        [sys.executable, "-m", "server", "admin", "create", "--email", email, "--name", "Bench Admin"],
        env={**os.environ, **env, "BABELCALL_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
    )
    if created.returncode != 0 and "is a member already" not in created.stderr:
        raise SystemExit(f"cannot create the administrator: {created.stderr.strip()}")


# --------------------------------------------------------------------------- speech material


def speech_regions(path: Path) -> list[tuple[float, float]]:
    """Ground-truth speech spans (seconds) from an offline Silero VAD pass over the whole file."""
    from faster_whisper import decode_audio
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio = decode_audio(str(path), sampling_rate=16_000)
    spans = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=500, speech_pad_ms=0))
    return [(s["start"] / 16_000, s["end"] / 16_000) for s in spans]


def make_excerpts(source: Path, count: int, seconds: float, directory: Path) -> list[Path]:
    """`count` different excerpts of `source`, so concurrent speakers do not say the same thing."""
    from media.file_source import decode_file, write_wav

    samples = decode_file(source, 48_000)
    length = int(seconds * 48_000)
    span = max(1, len(samples) - length)
    paths = []
    for index in range(count):
        start = (index * 7_919 * 48_000) % span  # spread the starts pseudo-randomly over the file
        paths.append(write_wav(directory / f"speaker{index}.wav", samples[start : start + length], 48_000))
    return paths


# --------------------------------------------------------------------------- one room


@dataclass
class RoomPlan:
    room_url: str
    speaker_email: str
    speaker_language: str
    listener_emails: list[str]
    listener_languages: list[str]
    audio: str
    regions: list[tuple[float, float]]
    linger_s: float
    listeners_receive_media: bool
    speakers_send_video: bool


def run_rooms(plans: list[RoomPlan]) -> dict[str, Any]:
    """Runs in a worker process: every room of `plans` concurrently, one event loop."""
    return asyncio.run(_run_rooms(plans))


async def _run_rooms(plans: list[RoomPlan]) -> dict[str, Any]:
    """The rooms' results, and this client process's own event-loop lag: a client too busy to keep up
    sends audio late and reads captions late, which would be charged to the server."""
    lags: list[float] = []
    probe = asyncio.create_task(probe_loop_lag(lags.append))
    rooms = list(await asyncio.gather(*(_run_room(plan) for plan in plans)))
    probe.cancel()
    return {"rooms": rooms, "loop_lag_s": lags}


async def _run_room(plan: RoomPlan) -> dict[str, Any]:
    """One room's measurements; a room whose participants could not connect is reported, not raised:
    under overload that is a result of the level, and the levels before it must not be lost."""
    from participant import JoinError, join_room

    done = asyncio.Event()
    listeners = [
        asyncio.create_task(
            join_room(
                plan.room_url,
                email=email,
                password=PASSWORD,
                audio=None,
                speaks=language,
                captions=language,
                linger_s=0.0,
                leave=done,
                receive_media=plan.listeners_receive_media,
            )
        )
        for email, language in zip(plan.listener_emails, plan.listener_languages, strict=True)
    ]
    await asyncio.sleep(1.0)  # listeners in the room before the speaker starts
    try:
        speaker = await join_room(
            plan.room_url,
            email=plan.speaker_email,
            password=PASSWORD,
            audio=Path(plan.audio),
            speaks=plan.speaker_language,
            captions=plan.speaker_language,
            linger_s=plan.linger_s,
            video=plan.speakers_send_video,
        )
    except JoinError as error:
        done.set()
        await asyncio.gather(*listeners, return_exceptions=True)
        return {"room": plan.room_url, "measurements": [], "failed": f"speaker: {error}"}
    done.set()
    outcomes = await asyncio.gather(*listeners, return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures:
        if not all(isinstance(f, JoinError) for f in failures):
            raise next(f for f in failures if not isinstance(f, JoinError))
        return {"room": plan.room_url, "measurements": [], "failed": f"listener: {failures[0]}"}
    reports = outcomes
    started = speaker.playback_started_at or 0.0
    measurements = []
    for language, report in zip(plan.listener_languages, reports, strict=True):
        measurements.extend(_measure(report, language, started, plan.regions))
    measurements.extend(_measure(speaker, plan.speaker_language, started, plan.regions))
    return {
        "room": plan.room_url,
        "measurements": measurements,
        "audio_max_lateness_s": speaker.audio_max_lateness_s,
        "listener_audio_received_s": [report.audio_received_s for report in reports],
        "listener_video_frames_received": [report.video_frames_received for report in reports],
    }


def _measure(
    report: Any, language: str, started: float, regions: list[tuple[float, float]]
) -> list[dict[str, Any]]:
    """Latencies of one listener's captions against the speech regions they cover."""
    first_partial: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    for event, arrived in zip(report.captions, report.arrivals, strict=True):
        # Caption times count from the room's opening; regions count from the start of playback.
        span_start = report.room_opened_at + event.start_s - started
        span_end = report.room_opened_at + event.end_s - started
        covered = [r for r in regions if r[1] > span_start and r[0] < span_end]
        if not covered:
            continue  # not about any speech region: no latency to measure
        # An utterance cut inside a long stretch of speech (max_utterance_s) starts or ends within a
        # region: its own bounds, not the region's, are when its speech began and ended.
        onset = max(covered[0][0], span_start)
        region_end = max(r[1] for r in covered)
        speech_end = min(region_end, span_end)
        # Speech going on well past the caption's end: recognition cut a monologue (max_utterance_s)
        # rather than hearing a pause. Such captions wait for the cut, not for the speaker.
        ended_by = "cut" if region_end > span_end + 0.5 else "pause"
        if event.kind is CaptionKind.PARTIAL:
            first_partial.setdefault(event.utterance_id, round(arrived - (started + onset), 3))
            continue
        stages = {}
        points = {**event.timings, "sent": event.sent_at}
        for stage, (a, b) in STAGES.items():
            if stage != "total" and a in points and b in points:
                stages[stage] = round(points[b] - points[a], 3)
        rows.append(
            {
                "kind": event.kind.value,
                "listener_language": language,
                "path": event.path.value,
                "utterance": event.utterance_id,
                "end_to_final_s": round(arrived - (started + speech_end), 3),
                "ended_by": ended_by,
                "onset_to_first_partial_s": first_partial.get(event.utterance_id),
                "stages_s": stages,
            }
        )
    return rows


# --------------------------------------------------------------------------- the sweep


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    array = np.asarray(values)
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p95": round(float(np.percentile(array, 95)), 3),
        "p99": round(float(np.percentile(array, 99)), 3),
        "n": len(values),
    }


class ServerProcess:
    """A server this benchmark started, with its CPU time and memory sampled."""

    def __init__(self, env: dict[str, str], log_path: Path, synthetic_tokens_per_s: float = 0.0) -> None:
        self.port = _free_port()
        self._log = open(log_path, "w")  # noqa: SIM115 - lives as long as the server
        self.log_path = log_path
        full_env = {**os.environ, **env, "BABELCALL_PORT": str(self.port)}
        # `babelcall serve`, with models built by bench/synthetic.py forced to a realistic length, and
        # a random-weight Whisper decoding a forced number of tokens when asked to.
        self.process = subprocess.Popen(
            [
                sys.executable,
                *("-m", "bench.synthetic", "serve"),
                *("--whisper-tokens-per-s", str(synthetic_tokens_per_s)),
            ],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 600
        while "BabelCall is ready" not in log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start; see {log_path}")
            time.sleep(0.2)
        self.url = f"http://127.0.0.1:{self.port}"

    def usage(self) -> dict[str, float]:
        import psutil

        proc = psutil.Process(self.process.pid)
        times = proc.cpu_times()
        # The main thread runs the event loop, which every packet, frame and caption goes through: one
        # core at most, whatever the host has, so its share is the server's first ceiling.
        main = next((t for t in proc.threads() if t.id == proc.pid), None)
        # The media workers (media/worker.py) carry the WebRTC packets, each on its own loop.
        media_cpu_s = media_rss_mb = 0.0
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child_times = child.cpu_times()
                media_cpu_s += child_times.user + child_times.system
                media_rss_mb += child.memory_info().rss / 2**20
        return {
            "cpu_s": times.user + times.system + media_cpu_s,  # the whole server, its workers included
            "loop_cpu_s": main.user_time + main.system_time if main else 0.0,
            "rss_mb": proc.memory_info().rss / 2**20,
            "media_cpu_s": media_cpu_s,
            "media_rss_mb": media_rss_mb,
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gpu_memory_mb() -> float | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return float(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None


def run_level(
    base_url: str,
    admin: RestClient,
    speakers: int,
    args: argparse.Namespace,
    audio: list[Path],
    regions: list[Any],
) -> list[dict[str, Any]]:
    """Creates the rooms and runs them; one result (rooms and loop lag) per client process."""
    languages = (
        args.listener_languages
        or [code for code in LISTENER_LANGUAGES if code != args.speaks][: args.listeners]
    )
    plans = []
    for index in range(speakers):
        speaker_email = f"speaker{index}@bench.invalid"
        ensure_member(base_url, admin, speaker_email, f"Speaker {index}")
        listener_emails = []
        for j in range(len(languages)):
            email = f"listener{index}-{j}@bench.invalid"
            ensure_member(base_url, admin, email, f"Listener {index}.{j}")
            listener_emails.append(email)
        status, body = admin.call(
            "POST", "/api/rooms", {"kind": "review", "title": f"bench {speakers}/{index}"}
        )
        if status != 201:
            raise SystemExit(f"cannot create a room: {body}")
        plans.append(
            RoomPlan(
                base_url + body["link"],
                speaker_email,
                args.speaks,
                listener_emails,
                languages,
                str(audio[index % len(audio)]),
                regions[index % len(audio)],
                args.linger,
                args.listeners_receive_media,
                args.speakers_send_video,
            )
        )
    workers = max(1, min(args.processes, speakers))
    chunks = [plans[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(run_rooms, chunks))


def server_counters(base_url: str) -> dict[str, float] | None:
    """The server's cumulative figures this benchmark reads (event-loop lag probes, early translations);
    None when /metrics cannot be read (a running server with a metrics token: set
    BABELCALL_METRICS_TOKEN)."""
    token = os.environ.get("BABELCALL_METRICS_TOKEN")
    request = urllib.request.Request(
        base_url + "/metrics", headers={"Authorization": f"Bearer {token}"} if token else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    figures = {"early_used": 0.0, "early_wasted": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "babelcall_event_loop_lag_seconds_count":
                figures["lag_probes"] = sample.value
            elif sample.name == "babelcall_event_loop_lag_seconds_bucket" and sample.labels["le"] == "0.1":
                figures["lag_probes_within_0.1s"] = sample.value
            elif sample.name == "babelcall_event_loop_lag_seconds_sum":
                figures["lag_sum_s"] = sample.value
            elif sample.name == "babelcall_early_translations_total":
                figures[f"early_{sample.labels['outcome']}"] = sample.value
    return figures


def loop_lag_between(
    before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, float] | None:
    if before is None or after is None or after.get("lag_probes", 0) <= before.get("lag_probes", 0):
        return None
    probes = after["lag_probes"] - before["lag_probes"]
    within = after["lag_probes_within_0.1s"] - before["lag_probes_within_0.1s"]
    return {
        "mean_s": round((after["lag_sum_s"] - before["lag_sum_s"]) / probes, 4),
        "share_over_0.1s": round(1 - within / probes, 4),
    }


def early_translations_between(
    before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, int] | None:
    """Finals whose translation started during their closing silence: used, or wasted (speech went on)."""
    if before is None or after is None:
        return None
    return {
        outcome: int(after[f"early_{outcome}"] - before[f"early_{outcome}"]) for outcome in ("used", "wasted")
    }


def summarise(speakers: int, workers: list[dict[str, Any]], usage: dict[str, Any]) -> dict[str, Any]:
    rooms = [room for worker in workers for room in worker["rooms"]]
    measured = [m for room in rooms for m in room["measurements"]]
    settled = [r for r in measured if r["kind"] == "settled"]
    rows = [r for r in measured if r["kind"] == "final"]
    stage_names = sorted({s for r in rows for s in r["stages_s"]})
    paused = [r for r in rows if r["ended_by"] == "pause"]
    return {
        "speakers": speakers,
        # Rooms whose speaker or a listener could not connect (e.g. a server too busy to answer ICE).
        "failed_rooms": sum(1 for room in rooms if "failed" in room),
        "failures": sorted({room["failed"] for room in rooms if "failed" in room}),
        # The headline: utterances that ended because the speaker paused.
        "end_to_final_s": percentiles([r["end_to_final_s"] for r in paused]),
        # A settled caption replaces finals the second pass decoded again; sent only where text changed.
        "end_to_settled_s": percentiles([r["end_to_final_s"] for r in settled]),
        "cut_end_to_final_s": percentiles([r["end_to_final_s"] for r in rows if r["ended_by"] == "cut"]),
        "end_to_final_by_path_s": {
            path: percentiles([r["end_to_final_s"] for r in paused if r["path"] == path])
            for path in sorted({r["path"] for r in paused})
        },
        "onset_to_first_partial_s": percentiles(
            [r["onset_to_first_partial_s"] for r in rows if r["onset_to_first_partial_s"] is not None]
        ),
        # Readers of the spoken language see each partial as decoded; readers of other languages only
        # translated partials, once a stable prefix exists (so later by design).
        "onset_to_first_partial_by_path_s": {
            path: percentiles(
                [
                    r["onset_to_first_partial_s"]
                    for r in rows
                    if r["path"] == path and r["onset_to_first_partial_s"] is not None
                ]
            )
            for path in sorted({r["path"] for r in rows})
        },
        "stages_p50_s": {
            s: round(statistics.median([r["stages_s"][s] for r in rows if s in r["stages_s"]]), 3)
            for s in stage_names
        },
        # Is the benchmark itself keeping up? Per speaker, the worst delay in sending audio; per client
        # process, its event loop's lag.
        "speaker_audio_max_lateness_s": percentiles(
            [room["audio_max_lateness_s"] for room in rooms if "audio_max_lateness_s" in room]
        ),
        "client_loop_lag_s": percentiles([lag for worker in workers for lag in worker["loop_lag_s"]]),
        # With --listeners-receive-media: how much of the speaker's audio each listener received.
        "listener_audio_received_s": percentiles(
            [seconds for room in rooms for seconds in room.get("listener_audio_received_s", [])]
        ),
        "listener_video_frames_received": percentiles(
            [frames for room in rooms for frames in room.get("listener_video_frames_received", [])]
        ),
        **usage,
        # Every final caption measured, one row per utterance and listener (latencies, path and stage
        # times; never the text), for looking into the tail behind the percentiles.
        "measurements": sorted(rows, key=lambda row: (row["utterance"], row["listener_language"])),
    }


def plot(levels: list[dict[str, Any]], path: Path, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    xs = [level["speakers"] for level in levels]
    for key in ("p50", "p95", "p99"):
        axes[0].plot(xs, [level["end_to_final_s"][key] for level in levels], marker="o", label=key)
    axes[0].set(xscale="log", xlabel="concurrent speakers", ylabel="end of speech → final caption (s)")
    axes[0].set_xticks(xs, [str(x) for x in xs])
    axes[0].legend()
    stages = sorted({s for level in levels for s in level["stages_p50_s"]})
    bottom = np.zeros(len(levels))
    for stage in stages:
        values = np.array([level["stages_p50_s"].get(stage, 0.0) for level in levels])
        axes[1].bar([str(x) for x in xs], values, bottom=bottom, label=stage)
        bottom += values
    axes[1].set(xlabel="concurrent speakers", ylabel="median seconds per stage")
    axes[1].legend()
    figure.suptitle(label)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="use this running server instead of starting one")
    parser.add_argument("--admin-email", default="admin@bench.invalid", help="administrator of --url")
    parser.add_argument("--speakers", default="1", help="comma-separated concurrent speaker counts")
    parser.add_argument(
        "--listeners", type=int, default=3, help="listeners per room, each in another language"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="speech per speaker")
    parser.add_argument("--linger", type=float, default=6.0, help="seconds the speaker stays after its audio")
    parser.add_argument(
        "--speakers-send-video",
        action="store_true",
        help="speakers also send a camera (a moving 640x480 test pattern at 15 fps), relayed to "
        "listeners who receive media",
    )
    parser.add_argument(
        "--listeners-receive-media",
        action="store_true",
        help="listeners subscribe to the speaker's media, as browsers do: the server relays it to every "
        "listener, and the client processes decode it",
    )
    parser.add_argument("--audio", type=Path, help="recording to speak (default: the dev consultation)")
    parser.add_argument("--speaks", default="en", help="the language spoken in --audio")
    parser.add_argument(
        "--listener-languages",
        type=lambda text: [code.strip() for code in text.split(",") if code.strip()],
        default=None,
        help="comma-separated caption languages of the listeners (default: --listeners of "
        + ",".join(LISTENER_LANGUAGES)
        + ")",
    )
    parser.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) // 4))
    parser.add_argument("--break-s", type=float, default=5.0, help="stop the sweep when p95 exceeds this")
    parser.add_argument("--server-env", action="append", default=[], help="KEY=VALUE for a started server")
    parser.add_argument("--label", default="", help="e.g. 'synthetic weights: speed only'")
    parser.add_argument(
        "--synthetic-tokens-per-s",
        type=float,
        default=0.0,
        help="the started server's Whisper has random weights (bench/synthetic_whisper.py): decode this "
        "many tokens per second of audio (speech: about 3.5)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "load")
    args = parser.parse_args(argv)

    source = (
        args.audio or DEFAULT_SHARED / "data" / "dev" / "speech" / "en_synthetic_consultation_day1_01.flac"
    )
    if not source.is_file():
        print(f"no audio at {source}: pass --audio or put ../shared beside the checkout", file=sys.stderr)
        return 2
    counts = [int(n) for n in args.speakers.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    # The excerpts, and a started server's database and model copy (~150 MB), go when the sweep ends.
    with tempfile.TemporaryDirectory(prefix="babelcall-bench-") as work:
        return sweep(args, counts, source, Path(work))


def sweep(args: argparse.Namespace, counts: list[int], source: Path, work: Path) -> int:
    audio = make_excerpts(source, min(max(counts), 16), args.seconds, work)
    regions = [speech_regions(path) for path in audio]

    server: ServerProcess | None = None
    if args.url:
        base_url = args.url.rstrip("/")
        password = os.environ.get("BABELCALL_PASSWORD")
        if not password:
            print("set BABELCALL_PASSWORD to the administrator's password", file=sys.stderr)
            return 2
        admin = RestClient(base_url)
        status, body = admin.call("POST", "/api/login", {"email": args.admin_email, "password": password})
    else:
        env = dict(item.split("=", 1) for item in args.server_env)
        env.setdefault("BABELCALL_DATA_DIR", str(work / "data"))
        # Every benchmark member applies from this machine's address.
        env.setdefault("BABELCALL_APPLICATIONS_PER_ADDRESS", "0")
        create_admin(env, args.admin_email)
        server = ServerProcess(env, args.out / "server.log", args.synthetic_tokens_per_s)
        base_url = server.url
        admin = RestClient(base_url)
        status, body = admin.call("POST", "/api/login", {"email": args.admin_email, "password": PASSWORD})
    if status != 200:
        print(f"cannot sign in as administrator: {body}", file=sys.stderr)
        return 2

    levels = []
    try:
        for count in counts:
            before = server.usage() if server else {}
            counters_before = server_counters(base_url)
            wall = time.monotonic()
            workers = run_level(base_url, admin, count, args, audio, regions)
            elapsed = time.monotonic() - wall
            counters_after = server_counters(base_url)
            usage: dict[str, Any] = {
                "wall_s": round(elapsed, 1),
                "gpu_memory_mb": gpu_memory_mb(),
                "server_loop_lag": loop_lag_between(counters_before, counters_after),
                "early_translations": early_translations_between(counters_before, counters_after),
            }
            if server:
                after = server.usage()
                audio_s = count * args.seconds
                usage["server_cpu_s"] = round(after["cpu_s"] - before["cpu_s"], 1)
                # Event-loop thread CPU per second of speech: 1 / this is roughly how many speakers
                # one loop could carry before it alone is saturated; likewise for each media worker.
                for figure, key in (
                    ("server_loop_cpu_per_audio_s", "loop_cpu_s"),
                    ("media_workers_cpu_per_audio_s", "media_cpu_s"),
                ):
                    usage[figure] = round((after[key] - before[key]) / audio_s, 4)
                usage["server_rss_mb"] = round(after["rss_mb"], 1)
                usage["media_workers_rss_mb"] = round(after["media_rss_mb"], 1)
                # Server CPU seconds per second of speech recognised: the real-time factor on this host.
                usage["server_cpu_per_audio_s"] = round(usage["server_cpu_s"] / audio_s, 3)
            level = summarise(count, workers, usage)
            levels.append(level)
            write_results(args, levels)
            e2f = level["end_to_final_s"]
            e2s = level["end_to_settled_s"]
            print(
                f"{count:4d} speakers: end→final p50 {e2f['p50']} p95 {e2f['p95']} p99 {e2f['p99']} s "
                f"(n={e2f['n']}; cut monologues p50 {level['cut_end_to_final_s']['p50']} s, "
                f"n={level['cut_end_to_final_s']['n']}); "
                f"first partial p50 {level['onset_to_first_partial_s']['p50']} s; "
                f"end→settled p50 {e2s['p50']} p95 {e2s['p95']} s (n={e2s['n']}); "
                f"stages p50 {level['stages_p50_s']}; early translations {level['early_translations']}; "
                f"server loop lag {level['server_loop_lag']}; "
                f"client loop lag p95 {level['client_loop_lag_s']['p95']} s; "
                f"speaker audio late by up to p95 {level['speaker_audio_max_lateness_s']['p95']} s",
                flush=True,
            )
            if level["failed_rooms"]:
                print(f"stopping: {level['failed_rooms']} rooms could not connect: {level['failures']}")
                break
            if e2f["p95"] is None or e2f["p95"] > args.break_s:
                print(f"stopping: p95 above {args.break_s} s (or no captions)", flush=True)
                break
    finally:
        if server:
            server.stop()
    print(f"wrote {args.out / 'results.json'} and results.png")
    return 0


def write_results(args: argparse.Namespace, levels: list[dict[str, Any]]) -> None:
    """Rewritten after every level, so a sweep that breaks down still leaves what it measured."""
    result = {
        "benchmark": "load",
        "label": args.label,
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": _versions(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        # A started server inherits this process's environment: its BABELCALL_* settings count too.
        "inherited_env": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith("BABELCALL_") and not any(word in k for word in ("PASSWORD", "TOKEN", "SECRET"))
        },
        "levels": levels,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    plot(levels, args.out / "results.png", args.label or "real weights")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("babelcall", "faster-whisper", "ctranslate2", "aiortc", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


if __name__ == "__main__":
    sys.exit(main())
