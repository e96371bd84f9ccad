"""Translation quality and cost: BLEU and chrF (sacrebleu) of every installed translation model on the
dev text sets, per beam size, with the CPU time each sentence took.

Sets (../shared/data/dev/text, see its README): NTREX-128 en→each of the 10 other languages and back
(xx→en translates the human translations back into English: translationese, easier than real source
text), TICO-19 en↔ar/es/fr/id/ru/zh (COVID-19, incl. spoken doctor-patient sentences; our split is by
document, not the official one), WMT22 en↔ja/ru/zh. Each model is scored on the pairs it translates
directly, through the engine's own tokenisation, sentence splitting and decoding. Sentences go one per
model call by default (`--batch 1`: live captions translate one utterance at a time), so the CPU time
per sentence (process time, all threads, which stays meaningful on a shared machine) is what one
caption costs.

    .venv/bin/python bench/mt_quality.py [--models-dir DIR] [--limit 200] [--sets ntrex,tico19,wmt22]
        [--pairs zh-en] [--beam-sizes 1,2,4] [--threads 1] [--batch 1]

With no model installed it prints "no translation model installed in DIR" and how to install one, and
exits with status 2: quality figures come only from real weights.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine_info, package_versions, write_json  # noqa: E402
from models import translation_model_directories  # noqa: E402
from mt.catalogue import recommended_model  # noqa: E402
from server.models_cli import default_models_dir  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "dev" / "text"
NTREX_CODES = {
    "ar": "arb",
    "zh": "zho-CN",
    "fr": "fra",
    "id": "ind",
    "ja": "jpn",
    "ru": "rus",
    "es": "spa",
    "th": "tha",
    "tr": "tur",
    "vi": "vie",
}
TICO_COLUMNS = {"ar": "ar", "es": "es-LA", "fr": "fr", "id": "id", "ru": "ru", "zh": "zh"}
WMT_PAIRS = [("en", "ja"), ("en", "ru"), ("en", "zh"), ("ja", "en"), ("ru", "en"), ("zh", "en")]
EXAMPLES = 5  # hypotheses kept per set in results.json, to read next to the scores


@dataclass(frozen=True)
class TestSet:
    name: str
    source: str
    target: str
    sources: list[str]
    references: list[list[str]]  # one list per reference translation, aligned with sources


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def load_sets(data: Path, names: set[str], limit: int | None) -> list[TestSet]:
    """Every test set found under `data`; a missing folder is skipped (the caller reports empties)."""
    sets: list[TestSet] = []
    ntrex = data / "ntrex128"
    if "ntrex" in names and (ntrex / "src.eng.txt").is_file():
        sources = _lines(ntrex / "src.eng.txt")
        for code, file_code in NTREX_CODES.items():
            ref = ntrex / f"ref.{file_code}.txt"
            if ref.is_file():
                sets.append(TestSet(f"ntrex128 en-{code}", "en", code, sources, [_lines(ref)]))
                sets.append(TestSet(f"ntrex128 {code}-en", code, "en", _lines(ref), [sources]))
    tico = data / "tico19" / "tico19_DEV.tsv"
    if "tico19" in names and tico.is_file():
        with open(tico, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        english = [r["en"] for r in rows]
        for code, column in TICO_COLUMNS.items():
            other = [r[column] for r in rows]
            sets.append(TestSet(f"tico19 en-{code}", "en", code, english, [other]))
            sets.append(TestSet(f"tico19 {code}-en", code, "en", other, [english]))
    wmt = data / "wmt22"
    if "wmt22" in names and wmt.is_dir():
        for source, target in WMT_PAIRS:
            stem = wmt / f"generaltest2022.{source}-{target}"
            src = Path(f"{stem}.src.{source}")
            refs = sorted(wmt.glob(f"generaltest2022.{source}-{target}.ref.*.{target}"))
            if src.is_file() and refs:
                sets.append(
                    TestSet(
                        f"wmt22 {source}-{target}", source, target, _lines(src), [_lines(r) for r in refs]
                    )
                )
    if limit is not None:
        sets = [
            TestSet(s.name, s.source, s.target, s.sources[:limit], [r[:limit] for r in s.references])
            for s in sets
        ]
    return sets


def bleu_tokenizer(target: str) -> str:
    # sacrebleu's "zh" splits Chinese characters; Japanese and Thai have no spaces either and ja-mecab
    # needs MeCab, so they are scored on characters. chrF needs no tokenizer.
    return {"zh": "zh", "ja": "char", "th": "char"}.get(target, "13a")


def score(hypotheses: list[str], test: TestSet) -> dict[str, float]:
    import sacrebleu

    bleu = sacrebleu.corpus_bleu(hypotheses, test.references, tokenize=bleu_tokenizer(test.target))
    chrf = sacrebleu.corpus_chrf(hypotheses, test.references)
    return {"bleu": round(bleu.score, 2), "chrf": round(chrf.score, 2)}


def evaluate(model: Any, test: TestSet, batch: int) -> dict[str, Any]:
    hypotheses: list[str] = []
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    for i in range(0, len(test.sources), batch):
        hypotheses += model.translate_batch(test.sources[i : i + batch], test.source, test.target)
    cpu_s, wall_s = time.process_time() - cpu_started, time.perf_counter() - wall_started
    return {
        "model": model.name,
        "family": model.family.value,
        "beam_size": model.beam_size,
        "set": test.name,
        "pair": f"{test.source}-{test.target}",
        "sentences": len(test.sources),
        **score(hypotheses, test),
        "bleu_tokenize": bleu_tokenizer(test.target),
        "cpu_s_per_sentence": round(cpu_s / len(test.sources), 4),
        "wall_s": round(wall_s, 1),
        "examples": [
            {"source": s, "hypothesis": h, "reference": r}
            for s, h, r in list(zip(test.sources, hypotheses, test.references[0], strict=True))[:EXAMPLES]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models-dir", type=Path, default=None, help="default: where `babelcall serve` looks"
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sets", default="ntrex,tico19,wmt22")
    parser.add_argument("--pairs", default="", help="only these pairs, e.g. zh-en,en-fr (default: all)")
    parser.add_argument("--limit", type=int, default=200, help="sentences per set (0: all)")
    parser.add_argument("--beam-sizes", default="2", help="comma-separated, e.g. 1,2,4 (the server's is 2)")
    parser.add_argument("--threads", type=int, default=1, help="CTranslate2 threads per model call")
    parser.add_argument("--batch", type=int, default=1, help="sentences per model call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "mt_quality")
    args = parser.parse_args(argv)
    machine = machine_info()  # the load average before this run adds its own
    models_dir = args.models_dir or default_models_dir()

    from mt import ModelLoadError, load_model

    beams = [int(b) for b in args.beam_sizes.split(",")]
    directories = translation_model_directories(models_dir)
    if not directories:
        known = recommended_model("en", "fr")
        print(
            f"no translation model installed in {models_dir}: install one with `babelcall models pull "
            f"{known.name if known else 'NAME'}` (or by hand: `babelcall models list`), then rerun",
            file=sys.stderr,
        )
        return 2
    sets = load_sets(args.data, set(args.sets.split(",")), args.limit or None)
    wanted_pairs = {p for p in args.pairs.split(",") if p}
    sets = [s for s in sets if not wanted_pairs or f"{s.source}-{s.target}" in wanted_pairs]
    if not sets:
        print(f"no test sets found under {args.data}", file=sys.stderr)
        return 2
    results = []
    print(f"{'model':32} {'set':20} {'beam':>4} {'n':>5} {'BLEU':>6} {'chrF':>6} {'cpu s/sent':>10}")
    for directory in directories:
        for beam in beams:
            try:
                model = load_model(
                    directory,
                    device=args.device,
                    compute_type=args.compute_type,
                    intra_threads=args.threads,
                    beam_size=beam,
                )
            except ModelLoadError as exc:
                print(f"skipping {directory.name}: {exc}", file=sys.stderr)
                break
            for test in sets:
                if model.covers(test.source, test.target):
                    row = evaluate(model, test, args.batch)
                    results.append(row)
                    print(
                        f"{row['model'][:32]:32} {row['set']:20} {beam:>4} {row['sentences']:>5} "
                        f"{row['bleu']:>6} {row['chrf']:>6} {row['cpu_s_per_sentence']:>10}",
                        flush=True,
                    )
    report = {
        "benchmark": "mt_quality",
        "machine": machine,
        "versions": package_versions("ctranslate2", "sentencepiece", "sacrebleu"),
        "models_dir": str(models_dir),
        "limit": args.limit,
        "threads": args.threads,
        "batch": args.batch,
        "compute_type": args.compute_type,
        "results": results,
    }
    write_json(args.out / "results.json", report)
    print(f"wrote {args.out / 'results.json'}")
    return 0 if results else 2


if __name__ == "__main__":
    sys.exit(main())
