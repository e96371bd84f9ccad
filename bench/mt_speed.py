"""Translation speed: latency and target tokens per second against batch size and number of target languages.

Runs an NLLB-200-distilled-600M-shaped model with seeded random weights (bench/synthetic.py)
through the same SentencePiece codec and CTranslate2 call the engine uses (beam 2). Random weights decode
to random lengths, so every call is forced to decode ceil(1.3 x source tokens) of the longest sentence in
the batch; "target tokens" counts 1.3 x each sentence's own source tokens (what a real model would have
produced), so padding waste in large batches is charged, not hidden. SYNTHETIC WEIGHTS: SPEED ONLY.

Fan-out follows the engine: one batch per target language, one after another on the one worker
(`--fanout sequential`); `--fanout merged` puts every target language of a batch into one call, as a
multilingual model allows (a candidate optimisation, measured rather than assumed).

    .venv/bin/python bench/mt_speed.py                                  # CPU, int8, full grid
    .venv/bin/python bench/mt_speed.py --device cuda --compute-type float16
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ctranslate2  # noqa: E402

from bench.synthetic import LENGTH_RATIO, build_synthetic_nllb, generated_sentences  # noqa: E402
from mt.families import ModelFamily  # noqa: E402
from mt.tokenization import SentencePieceCodec  # noqa: E402

NTREX = ROOT.parent / "shared" / "data" / "dev" / "text" / "ntrex128" / "src.eng.txt"
# Ten listener languages besides English, in the order configurations add them.
TARGETS = ["fr", "es", "zh", "ar", "ru", "ja", "vi", "id", "tr", "th"]
LABEL = "synthetic weights: speed only"
BEAM_SIZE = 2  # the engine's default (mt/model.py)


def source_sentences(count: int) -> tuple[list[str], str]:
    if NTREX.is_file():
        lines = [line for line in NTREX.read_text(encoding="utf-8").splitlines() if line.strip()]
        return lines[:count], f"NTREX-128 src.eng.txt, first {count} lines"
    return generated_sentences(count), f"{count} generated sentences (NTREX-128 not found)"


def forced_length(tokens: list[list[str]]) -> int:
    return math.ceil(LENGTH_RATIO * max(len(t) for t in tokens))


def run_config(
    translator: ctranslate2.Translator,
    codec: SentencePieceCodec,
    sentences: list[str],
    batch_size: int,
    targets: list[str],
    fanout: str,
) -> dict[str, Any]:
    batches = [sentences[i : i + batch_size] for i in range(0, len(sentences), batch_size)]
    latencies: list[float] = []
    target_tokens = 0
    decoded_steps = 0
    started = time.perf_counter()
    for batch in batches:
        encoded = {t: codec.encode(batch, "en", t) for t in targets}
        first = encoded[targets[0]].source
        length = forced_length(first)
        own = sum(math.ceil(LENGTH_RATIO * len(t)) for t in first)
        t0 = time.perf_counter()
        if fanout == "merged":
            translator.translate_batch(
                [s for t in targets for s in encoded[t].source],
                target_prefix=[p for t in targets for p in encoded[t].target_prefix or []],
                beam_size=BEAM_SIZE,
                min_decoding_length=length,
                max_decoding_length=length,
            )
        else:
            for t in targets:
                translator.translate_batch(
                    encoded[t].source,
                    target_prefix=encoded[t].target_prefix,
                    beam_size=BEAM_SIZE,
                    min_decoding_length=length,
                    max_decoding_length=length,
                )
        latencies.append(time.perf_counter() - t0)
        target_tokens += own * len(targets)
        decoded_steps += length
    elapsed = time.perf_counter() - started
    return {
        "batch_size": batch_size,
        "targets": len(targets),
        "fanout": fanout,
        "sentences": len(sentences),
        "batches": len(batches),
        # Every sentence of a batch waits for the whole batch and all its target languages.
        "latency_ms_mean": round(1000 * statistics.mean(latencies), 1),
        "latency_ms_max": round(1000 * max(latencies), 1),
        "target_tokens": target_tokens,
        "target_tokens_per_s": round(target_tokens / elapsed, 1),
        "sentences_per_s": round(len(sentences) * len(targets) / elapsed, 2),
        "seconds": round(elapsed, 2),
    }


def plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key in sorted({(r["targets"], r["fanout"]) for r in results}):
        rows = sorted(
            (r for r in results if (r["targets"], r["fanout"]) == key), key=lambda r: r["batch_size"]
        )
        label = f"{key[0]} target{'s' if key[0] > 1 else ''} ({key[1]})"
        sizes = [r["batch_size"] for r in rows]
        left.plot(sizes, [r["latency_ms_mean"] for r in rows], marker="o", label=label)
        right.plot(sizes, [r["target_tokens_per_s"] for r in rows], marker="o", label=label)
    for axis, ylabel in ((left, "latency per batch, ms (mean)"), (right, "target tokens / s")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("batch size (sentences)")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(f"{title} — {LABEL}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compute-type", default=None, help="default: int8 on cpu, float16 on cuda")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32")
    parser.add_argument("--targets", default="1,3,10", help="numbers of target languages")
    parser.add_argument("--fanout", default="sequential", help="sequential, merged, or both comma-separated")
    parser.add_argument("--sentences", type=int, default=32, help="sentences per configuration (>= batch)")
    parser.add_argument(
        "--max-sentence-targets", type=int, default=0, help="cap sentences x targets per config"
    )
    parser.add_argument("--intra-threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "bench" / "out" / "mt_speed" / "model")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "mt_speed")
    parser.add_argument("--layers", type=int, default=12, help="smaller only for smoke tests")
    args = parser.parse_args(argv)
    compute_type = args.compute_type or ("int8" if args.device == "cpu" else "float16")
    batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    target_counts = [int(x) for x in args.targets.split(",")]
    fanouts = args.fanout.split(",")

    sentences, source_label = source_sentences(max(args.sentences, max(batch_sizes), 200))
    t0 = time.perf_counter()
    model_dir = build_synthetic_nllb(args.model_dir, sentences, layers=args.layers)
    build_s = time.perf_counter() - t0
    translator = ctranslate2.Translator(
        str(model_dir), device=args.device, compute_type=compute_type, intra_threads=args.intra_threads
    )
    codec = SentencePieceCodec(ModelFamily.NLLB, model_dir / "sentencepiece.bpe.model")
    # One warm-up call: the first allocates buffers (and on GPU loads cuBLAS).
    warm = codec.encode(sentences[:1], "en", "fr")
    translator.translate_batch(warm.source, target_prefix=warm.target_prefix, max_decoding_length=4)

    results: list[dict[str, Any]] = []
    print(f"# {LABEL}: NLLB-600M-shaped model, {args.device}/{compute_type}, beam {BEAM_SIZE}")
    header = ("batch", "targets", "fanout", "latency ms", "max ms", "tok/s", "sent/s")
    print("{:>5} {:>7} {:>10} {:>11} {:>8} {:>8} {:>7}".format(*header))
    for count in target_counts:
        for fanout in fanouts:
            if fanout == "merged" and count == 1:
                continue  # identical to sequential
            for batch_size in batch_sizes:
                n = max(args.sentences, batch_size)
                if args.max_sentence_targets:
                    n = max(batch_size, min(n, args.max_sentence_targets // count // batch_size * batch_size))
                row = run_config(translator, codec, sentences[:n], batch_size, TARGETS[:count], fanout)
                results.append(row)
                print(
                    f"{batch_size:>5} {count:>7} {fanout:>10} {row['latency_ms_mean']:>11} "
                    f"{row['latency_ms_max']:>8} {row['target_tokens_per_s']:>8} {row['sentences_per_s']:>7}",
                    flush=True,
                )

    args.out.mkdir(parents=True, exist_ok=True)
    device_name = platform.processor() or platform.machine()
    if args.device == "cuda":
        device_name = f"CUDA device 0 of {ctranslate2.get_cuda_device_count()}"
    report = {
        "label": LABEL,
        "model": {"shape": "nllb-200-distilled-600M", "layers": args.layers, "path": str(model_dir)},
        "device": args.device,
        "device_name": device_name,
        "compute_type": compute_type,
        "beam_size": BEAM_SIZE,
        "intra_threads": args.intra_threads,
        "ctranslate2": ctranslate2.__version__,
        "python": platform.python_version(),
        "cpu_count": __import__("os").cpu_count(),
        "sources": source_label,
        "decoded_tokens": f"forced to ceil({LENGTH_RATIO} x longest source tokens in the batch)",
        "build_seconds": round(build_s, 1),
        "results": results,
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot(results, args.out / "mt_speed.png", f"NLLB-600M shape, {args.device}/{compute_type}")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'mt_speed.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
