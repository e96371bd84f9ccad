"""A Chinese doctor and an English reader in a real call: what the reader reads, and how soon.

For every real Chinese clip in ../shared/data/dev/speech (zh_*), a headless participant speaks the clip
(after 2 s of silence, so everyone is connected) into a room of a `babelcall serve` started here with
the translation models of --models-dir, over WebRTC, while a headless English reader collects its
captions. Two routes to English, each with a server of its own:

  text-model: Whisper's Chinese through the installed zh→en model (the route when one is installed);
  whisper:    Whisper's own speech translation (BABELCALL_MT_PREFER_WHISPER_ENGLISH=zh).

Prints, per clip and route, the English the reader holds at the end (settled captions applied, as
`protocol.captions.transcript` does), the caption's path and model, end of speech → the reader's
final caption, and sacrebleu BLEU/chrF of both clips against the developers' own reference
translations (bench/mt_english.py). Writes <out>/results.json.

    .venv/bin/python -m bench.zh_call --models-dir bench/out/mt-zh
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import DEFAULT_SHARED, machine_info, package_versions, require_shared, write_json
from bench.load import PASSWORD, ServerProcess, create_admin, ensure_member
from bench.mt_english import REFERENCES
from participant.rest import RestClient
from protocol.captions import CaptionKind, transcript

ROUTES = {"text-model": {}, "whisper": {"BABELCALL_MT_PREFER_WHISPER_ENGLISH": "zh"}}
RATE = 48_000
ADMIN = "admin@bench.example.org"
SPEAKER = ("zh.doctor@bench.example.org", "Dr Li Wei")
READER = ("en.reader@bench.example.org", "Dr Emma Hart")


def padded(source: Path, target: Path, lead_s: float = 2.0) -> Path:
    from media.file_source import decode_file, write_wav

    silence = np.zeros(int(lead_s * RATE), dtype=np.int16)
    return write_wav(target, np.concatenate([silence, decode_file(source, RATE)]), RATE)


async def one_clip(base_url: str, clip: Path, linger_s: float) -> dict[str, Any]:
    from participant import join_room

    host = RestClient(base_url)
    host.call("POST", "/api/login", {"email": SPEAKER[0], "password": PASSWORD})
    status, body = host.call("POST", "/api/rooms", {"kind": "consultation", "title": clip.stem})
    if status != 201:
        raise SystemExit(f"cannot create a room: {body}")
    room_url = base_url + str(body["link"])
    done = asyncio.Event()
    reader = asyncio.create_task(
        join_room(room_url, email=READER[0], password=PASSWORD, audio=None, speaks="en", captions="en",
                  linger_s=0.0, leave=done)
    )  # fmt: skip
    await asyncio.sleep(1.0)
    await join_room(room_url, email=SPEAKER[0], password=PASSWORD, audio=clip, speaks="zh", captions="zh",
                    linger_s=linger_s)  # fmt: skip
    done.set()
    report = await reader
    finals = [
        (event, arrived)
        for event, arrived in zip(report.captions, report.arrivals, strict=True)
        if event.kind is CaptionKind.FINAL
    ]
    lines = transcript(report.captions)
    timed = [(event.timings.get("speech_end"), arrived) for event, arrived in finals]
    return {
        "text": " ".join(line.text for line in lines),
        "paths": sorted({f"{line.path.value} ({line.model})" for line in lines}),
        "settled": sum(1 for e in report.captions if e.kind is CaptionKind.SETTLED),
        "end_to_final_s": [round(arrived - end, 3) for end, arrived in timed if end is not None],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, required=True, help="holds the zh→en model")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--linger", type=float, default=8.0, help="seconds the speaker stays: time to settle")
    parser.add_argument("--out", type=Path, default=Path("bench/out/zh_call"))
    args = parser.parse_args(argv)
    speech = require_shared(args.shared) / "data" / "dev" / "speech"
    clips = sorted(p for p in speech.glob("zh_*") if p.name in REFERENCES)
    if not clips:
        print(f"no Chinese clips with references in {speech}", file=sys.stderr)
        return 2
    import sacrebleu

    machine = machine_info()
    results: dict[str, Any] = {
        "machine": machine,
        "versions": package_versions("ctranslate2", "faster-whisper"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for route, extra_env in ROUTES.items():
        with tempfile.TemporaryDirectory() as work_dir:
            work = Path(work_dir)
            env = {
                "BABELCALL_DATA_DIR": str(work / "data"),
                "BABELCALL_TRANSLATION_MODELS_DIR": str(args.models_dir.resolve()),
                "BABELCALL_APPLICATIONS_PER_ADDRESS": "0",
                **extra_env,
            }
            create_admin(env, ADMIN)
            server = ServerProcess(env, args.out / f"server-{route}.log")
            try:
                admin = RestClient(server.url)
                admin.call("POST", "/api/login", {"email": ADMIN, "password": PASSWORD})
                for email, name in (SPEAKER, READER):
                    ensure_member(server.url, admin, email, name)
                rows = {}
                for clip in clips:
                    audio = padded(clip, work / f"{clip.stem}.wav")
                    rows[clip.name] = asyncio.run(one_clip(server.url, audio, args.linger))
            finally:
                server.stop()
        hypotheses = [rows[clip.name]["text"] for clip in clips]
        references = [list(refs) for refs in zip(*(REFERENCES[clip.name] for clip in clips), strict=True)]
        latencies = [s for row in rows.values() for s in row["end_to_final_s"]]
        results[route] = {
            "clips": rows,
            "bleu": round(sacrebleu.corpus_bleu(hypotheses, references).score, 1),
            "chrf": round(sacrebleu.corpus_chrf(hypotheses, references).score, 1),
            "end_to_final_median_s": round(statistics.median(latencies), 3) if latencies else None,
        }
        write_json(args.out / "results.json", results)
        for name, row in rows.items():
            print(f"{route:10}  {name:28}  {row['end_to_final_s']} s  {row['paths']}  {row['text']!r}")
        summary = results[route]
        print(f"{route:10}  BLEU {summary['bleu']}  chrF {summary['chrf']}  "
              f"end of speech → final median {summary['end_to_final_median_s']} s")  # fmt: skip
    print(f"machine: {machine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
