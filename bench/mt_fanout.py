"""Translation fan-out on CPU: how soon each listener language of one utterance is ready.

Loads every model directory under MODELS_DIR (e.g. three OPUS-MT-shaped pairs built by
`python -m bench.synthetic DIR --shape opus-mt --pairs en-fr,en-es,en-ar --sentences …`)
and translates real sentences, one at a time, from English into every language the models cover,
through `TranslationEngine.start(...).as_ready()`, the caption pipeline's own path. Configurations:

- `one-call-two-threads`: one model call at a time, each on `--cores` threads (the engine until the
  fifth session);
- `one-call-one-thread`: one model call at a time, each on one thread;
- `side-by-side`: `--cores` calls at once, one thread each;
- `side-by-side-two-threads`: `--cores` calls at once, each on `--cores` threads;
- `server`: as `TranslationEngine.from_directory` sets it up: `--cores` calls at once, the cores
  divided among the models (one thread each for three pairs on two cores, both for a lone model).

Per configuration: the median time until the first, the middle and the last language is ready.
Random weights decode a fixed length per source token, so labelled: synthetic weights, speed only.

    .venv/bin/python -m bench.mt_fanout MODELS_DIR [--cores 2] [--sentences 24] [--beam-size 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_SHARED, REPO_ROOT, machine_info, package_versions, require_shared, write_json
from bench.synthetic import force_length, is_synthetic, synthetic_lengths
from models import translation_model_directories
from mt import TranslationEngine, load_model
from mt.model import DEFAULT_BEAM_SIZE

# name: (threads per call, calls at once); "cores" stands for --cores.
FIXED_CONFIGURATIONS: dict[str, tuple[int | str, int | str]] = {
    "one-call-two-threads": ("cores", 1),
    "one-call-one-thread": (1, 1),
    "side-by-side": (1, "cores"),
    "side-by-side-two-threads": ("cores", "cores"),
}
SERVER = "server"


def engine_for(name: str, args: argparse.Namespace) -> TranslationEngine:
    if name == SERVER:
        with synthetic_lengths():
            return TranslationEngine.from_directory(
                args.models_dir, cpu_threads=args.cores, beam_size=args.beam_size
            )
    threads, workers = (
        args.cores if value == "cores" else int(value) for value in FIXED_CONFIGURATIONS[name]
    )
    directories = translation_model_directories(args.models_dir)
    models = [load_model(d, intra_threads=threads, beam_size=args.beam_size) for d in directories]
    models = [force_length(m) if is_synthetic(d) else m for m, d in zip(models, directories, strict=True)]
    return TranslationEngine(models, workers=workers)


async def measure(engine: TranslationEngine, sentences: list[str]) -> dict[str, Any]:
    targets = sorted({language for model in engine.models for language in model.languages} - {"en"})
    await engine.translate("Warm-up.", "en", targets)
    ready: list[list[float]] = []
    for sentence in sentences:
        started = time.perf_counter()
        translation = engine.start(sentence, "en", targets)
        ready.append([time.perf_counter() - started async for _ in translation.as_ready()])
    await engine.aclose()
    return {
        "targets": targets,
        "models": engine.model_names,
        **{
            f"{which}_ready_median_s": round(statistics.median(t[index] for t in ready), 3)
            for which, index in (("first", 0), ("middle", len(targets) // 2), ("last", -1))
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models_dir", type=Path)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=24)
    parser.add_argument("--beam-size", type=int, default=DEFAULT_BEAM_SIZE, help="the server's mt_beam_size")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out" / "mt_fanout")
    args = parser.parse_args()
    ntrex = require_shared(args.shared) / "data" / "dev" / "text" / "ntrex128" / "src.eng.txt"
    sentences = [line for line in ntrex.read_text(encoding="utf-8").splitlines() if line.strip()]
    sentences = sentences[: args.sentences]
    results = {}
    for name in [*FIXED_CONFIGURATIONS, SERVER]:
        figures = asyncio.run(measure(engine_for(name, args), sentences))
        results[name] = {"threads_per_call, calls_at_once": FIXED_CONFIGURATIONS.get(name, SERVER), **figures}
        print(
            f"{name:24s} first {figures['first_ready_median_s']:.3f} s, middle "
            f"{figures['middle_ready_median_s']:.3f} s, last {figures['last_ready_median_s']:.3f} s "
            f"(median of {len(sentences)} sentences; synthetic weights: speed only)"
        )
    report = {
        "benchmark": "mt_fanout",
        "label": "synthetic weights: speed only",
        "machine": machine_info(),
        "versions": package_versions("ctranslate2", "sentencepiece"),
        "settings": {"cores": args.cores, "beam_size": args.beam_size, "models_dir": args.models_dir},
        "sentences": f"NTREX-128 src.eng.txt, first {len(sentences)} lines",
        "configurations": results,
    }
    write_json(args.out / "results.json", report)
    print(f"wrote {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
