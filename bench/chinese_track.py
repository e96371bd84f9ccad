"""Chinese speech to measure translated captions with: TICO-19 medical sentences read by espeak-ng.

The development data has only 6.5 s of real Chinese speech (two clips), too little for latency
percentiles, and replaying one clip would let the translation cache answer. This reads the first N
Chinese sentences of TICO-19's dev set aloud (espeak-ng's Mandarin voice), after the two real clips,
each followed by a pause long enough to end an utterance. Synthetic speech: fine for timing the
pipeline, not a claim about recognition accuracy on real voices.

    python -m bench.chinese_track --sentences 20 --out bench/out/zh_track.wav
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from media.file_source import decode_file, write_wav

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "dev"
RATE = 48_000
PAUSE_S = 1.5


def tico19_chinese(count: int) -> list[str]:
    with open(SHARED / "text" / "tico19" / "tico19_DEV.tsv", encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row["zh"].strip() for row, _ in zip(rows, range(count), strict=False) if row["zh"].strip()]


def read_aloud(sentences: list[str], directory: Path) -> list[np.ndarray]:
    spoken = []
    for index, sentence in enumerate(sentences):
        path = directory / f"{index}.wav"
        subprocess.run(["espeak-ng", "-v", "cmn", "-s", "150", "-w", str(path), sentence], check=True)
        spoken.append(decode_file(path, RATE))
    return spoken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "zh_track.wav")
    args = parser.parse_args(argv)
    speech = SHARED / "speech"
    real = [
        decode_file(speech / name, RATE) for name in ("zh_funasr_asr_example.wav", "zh_uberi_chinese.flac")
    ]
    with tempfile.TemporaryDirectory() as work:
        generated = read_aloud(tico19_chinese(args.sentences), Path(work))
    pause = np.zeros(int(PAUSE_S * RATE), dtype=np.int16)
    pieces = [part for clip in [*real, *generated] for part in (clip, pause)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_wav(args.out, np.concatenate([pause, *pieces]), RATE)
    seconds = sum(len(piece) for piece in pieces) / RATE
    print(f"{args.out}: {seconds:.1f} s, {len(real)} real clips and {len(generated)} TICO-19 sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
