"""Production-size translation models with seeded random weights, for speed benchmarks only.

No real translation weights can be had on the development or GPU machines, so `bench/mt_speed.py`
measures a model of NLLB-200-distilled-600M's exact architecture (pre-norm Transformer, d_model 1024,
12 encoder + 12 decoder layers, 16 heads, FFN 4096, one shared 256,206-entry embedding) whose weights are
random. Decoding cost depends on shapes, not values, so speed figures transfer; its output is noise, so
every figure must be labelled "synthetic weights: speed only".

Built from nothing but numpy, sentencepiece and ctranslate2 (no torch, no download) in well under a
minute, so the GPU machine can build it on the spot. The vocabulary is a small SentencePiece model trained
on the benchmark's own sentences, padded with filler tokens to NLLB's size so the output projection — the
largest matrix — costs what it costs in NLLB.

Random weights never decide to stop, so a benchmark decodes a fixed length per source token: a model
directory built here carries the STAMP file, and `force_length` (or `synthetic_lengths()` around an
engine that loads a directory, or `python -m bench.synthetic serve` for a whole server) makes its
calls decode LENGTH_RATIO target tokens per source token. Production code knows nothing of this.

    python -m bench.synthetic DIR --shape opus-mt --pairs en-fr,en-es --sentences NTREX/src.eng.txt
    python -m bench.synthetic serve [--whisper-tokens-per-s N]   # the server, synthetic models forced
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
from ctranslate2.specs import TransformerSpec, model_spec

from mt.model import Seq2SeqModel, TranslationModel
from protocol.languages import LANGUAGES

log = logging.getLogger(__name__)

NLLB_600M_SHAPE = {"layers": 12, "d_model": 1024, "heads": 16, "ffn": 4096, "vocab": 256_206}
# Helsinki-NLP's OPUS-MT pairs (e.g. opus-mt-en-fr: 59,514 entries; the pairs range ~55-65k).
OPUS_MT_SHAPE = {"layers": 6, "d_model": 512, "heads": 8, "ffn": 2048, "vocab": 60_000}
STAMP = "synthetic.json"  # marks a model directory as random weights: speed only
# Random weights never choose to stop, so decoding is forced to this many target tokens per source
# token, about what real translations between these languages produce.
LENGTH_RATIO = 1.3


class ForcedLengthModel(Seq2SeqModel):
    """A random-weight model whose every call decodes LENGTH_RATIO target tokens per source token."""

    def decoding_bounds(self, longest_source: int) -> tuple[int, int]:
        forced = math.ceil(LENGTH_RATIO * longest_source)
        return forced, forced


def is_synthetic(directory: Path) -> bool:
    return (Path(directory) / STAMP).is_file()


def force_length(model: TranslationModel) -> TranslationModel:
    """The same loaded model, decoding a fixed length (a subclass adding no state, so the switch is safe)."""
    if not isinstance(model, Seq2SeqModel):
        raise TypeError(f"{model.name}: only sequence-to-sequence models can be forced to a length")
    model.__class__ = ForcedLengthModel
    log.warning("%s has random weights (bench/synthetic.py): speed measurements only", model.name)
    return model


@contextlib.contextmanager
def synthetic_lengths() -> Iterator[None]:
    """While active, `TranslationEngine.from_directory` forces the length of every synthetic model it
    loads (directories holding STAMP); real models load unchanged."""
    import mt.engine

    real_load = mt.engine.load_model

    def load(path: Path, **options: Any) -> TranslationModel:
        model = real_load(path, **options)
        return force_length(model) if is_synthetic(path) else model

    mt.engine.load_model = load
    try:
        yield
    finally:
        mt.engine.load_model = real_load


def serve(argv: Sequence[str]) -> int:
    """`babelcall serve ARGV` for speed benchmarks (bench/load.py starts this): translation models
    built here decode a forced length, and with `--whisper-tokens-per-s N` a random-weight Whisper
    (bench/synthetic_whisper.py) decodes N tokens per second of audio."""
    import argparse

    from server.cli import main as babelcall

    options = argparse.ArgumentParser(prog="python -m bench.synthetic serve")
    options.add_argument("--whisper-tokens-per-s", type=float, default=0.0)
    known, server_args = options.parse_known_args(list(argv))
    if known.whisper_tokens_per_s > 0:
        from bench.synthetic_whisper import use_forced_length_whisper

        use_forced_length_whisper(known.whisper_tokens_per_s)
    with synthetic_lengths():
        return babelcall(["serve", *server_args])


def transformer_weight_shape(scope: str, d_model: int, ffn: int, vocab_size: int) -> tuple[int, ...]:
    """The shape CTranslate2's TransformerSpec expects for the variable at `scope` (weights and layer
    norms; biases are optional in the spec)."""
    parts = scope.split("/")
    attr, layer, block = parts[-1], parts[-2], parts[-3] if len(parts) > 2 else ""
    if attr in ("gamma", "beta"):
        return (d_model,)
    if layer in ("embeddings", "embeddings_0", "projection"):
        return (vocab_size, d_model)
    if block == "ffn":
        return (ffn, d_model) if layer == "linear_0" else (d_model, ffn)
    if block == "self_attention":
        return (3 * d_model, d_model) if layer == "linear_0" else (d_model, d_model)
    if block == "attention":  # encoder-decoder attention: query, fused key+value, output
        return (2 * d_model, d_model) if layer == "linear_1" else (d_model, d_model)
    raise ValueError(f"no shape rule for {scope}")


def build_synthetic_nllb(
    directory: Path,
    sentences: Sequence[str],
    *,
    layers: int = 12,
    d_model: int = 1024,
    heads: int = 16,
    ffn: int = 4096,
    vocab_size: int = 256_206,
    spm_vocab: int = 8000,
    quantization: str = "int8",
    seed: int = 0,
) -> Path:
    """Save (or reuse) an NLLB-shaped CTranslate2 model with random weights in `directory`."""
    shape = {"layers": layers, "d_model": d_model, "heads": heads, "ffn": ffn, "vocab": vocab_size}
    lang_tokens = [lang.nllb_code for lang in LANGUAGES.values()]

    def vocabulary() -> list[str]:
        pieces = _train_sentencepiece(directory / "sentencepiece.bpe.model", sentences, spm_vocab)
        return ["<s>", "<pad>", "</s>", "<unk>", *pieces, *lang_tokens]

    metadata = {"family": "nllb", "name": "synthetic-nllb-600M", "synthetic": "speed only"}
    return _build(
        directory,
        shape,
        vocabulary,
        metadata,
        marian=False,
        spm_vocab=spm_vocab,
        quantization=quantization,
        seed=seed,
    )


def build_synthetic_opus_mt(
    directory: Path,
    sentences: Sequence[str],
    source: str,
    target: str,
    *,
    spm_vocab: int = 8000,
    quantization: str = "int8",
    seed: int = 0,
) -> Path:
    """Save (or reuse) an OPUS-MT-shaped pair (Marian: 6 + 6 layers, d_model 512, 8 heads, FFN 2048, one
    tied ~60k vocabulary, source.spm / target.spm) with random weights in `directory`."""
    shape = {**OPUS_MT_SHAPE, "pair": f"{source}-{target}"}

    def vocabulary() -> list[str]:
        pieces = _train_sentencepiece(directory / "source.spm", sentences, spm_vocab)
        (directory / "target.spm").write_bytes((directory / "source.spm").read_bytes())
        return ["</s>", "<unk>", *pieces]

    metadata = {"family": "marian", "source": source, "target": target, "synthetic": "speed only"}
    return _build(
        directory,
        shape,
        vocabulary,
        metadata,
        marian=True,
        spm_vocab=spm_vocab,
        quantization=quantization,
        seed=seed,
    )


def _build(
    directory: Path,
    shape: dict[str, Any],
    vocabulary_of: Callable[[], list[str]],
    metadata: dict[str, str],
    *,
    marian: bool,
    spm_vocab: int,
    quantization: str,
    seed: int,
) -> Path:
    params = {**shape, "spm_vocab": spm_vocab, "quantization": quantization, "seed": seed}
    stamp = directory / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == params and (directory / "model.bin").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    d_model, ffn, vocab_size = shape["d_model"], shape["ffn"], shape["vocab"]
    vocabulary = vocabulary_of()
    vocabulary += [f"madeupword{i}" for i in range(vocab_size - len(vocabulary))]

    spec = TransformerSpec.from_config(num_layers=shape["layers"], num_heads=shape["heads"])
    rng = np.random.default_rng(seed)
    std = 1.0 / np.sqrt(d_model)

    def fill(layer: model_spec.LayerSpec, scope: str, value: object) -> None:
        if value is not None or scope.split("/")[-2].startswith(("embeddings", "projection")):
            return
        weight_shape = transformer_weight_shape(scope, d_model, ffn, vocab_size)
        if scope.endswith("gamma"):
            array = np.ones(weight_shape, np.float16)
        elif scope.endswith("beta"):
            array = np.zeros(weight_shape, np.float16)
        else:
            # float32 draws cast to float16: half the memory of float32 weights, no float64 temporaries.
            array = (rng.standard_normal(weight_shape, dtype=np.float32) * std).astype(np.float16)
        setattr(layer, scope.split("/")[-1], array)

    model_spec.visit_spec(spec, fill)
    # Both families tie the encoder and decoder embeddings and the output projection: one matrix, stored once.
    embeddings = (rng.standard_normal((vocab_size, d_model), dtype=np.float32) * std).astype(np.float16)
    spec.encoder.embeddings[0].weight = embeddings
    spec.decoder.embeddings.weight = embeddings
    spec.decoder.projection.weight = embeddings
    # As ctranslate2's converters do: NLLB starts decoding after "</s>", Marian from a zero embedding.
    spec.config.decoder_start_token = "</s>"
    if marian:
        spec.decoder.start_from_zero_embedding = True
    spec.register_source_vocabulary(vocabulary)
    spec.register_target_vocabulary(vocabulary)
    spec.validate()
    # ModelSpec.optimize() would find the tied matrices by comparing every pair of same-shape weights
    # element by element (minutes at this size); alias them by name instead, then quantise.
    spec.decoder.embeddings.weight = "encoder/embeddings_0/weight"
    spec.decoder.projection.weight = "encoder/embeddings_0/weight"
    spec._quantize(quantization)
    spec.save(str(directory))
    (directory / "babelcall.json").write_text(json.dumps(metadata), encoding="utf-8")
    stamp.write_text(json.dumps(params))
    return directory


def _train_sentencepiece(path: Path, sentences: Sequence[str], vocab_size: int) -> list[str]:
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sentences)),
        model_writer=writer,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        minloglevel=2,
        num_threads=4,
    )
    path.write_bytes(writer.getvalue())
    sp = spm.SentencePieceProcessor(model_file=str(path))
    specials = {"<unk>", "<s>", "</s>"}
    return [p for p in (sp.id_to_piece(i) for i in range(sp.get_piece_size())) if p not in specials]


def generated_sentences(count: int, seed: int = 0) -> list[str]:
    """Clinic-like English sentences of realistic length (8-30 words) when no test set is available."""
    words = [
        "the",
        "patient",
        "doctor",
        "pain",
        "since",
        "yesterday",
        "morning",
        "please",
        "take",
        "this",
        "medicine",
        "twice",
        "a",
        "day",
        "after",
        "meals",
        "we",
        "will",
        "check",
        "your",
        "blood",
        "pressure",
        "temperature",
        "and",
        "heart",
        "rate",
        "do",
        "you",
        "have",
        "any",
        "allergies",
        "come",
        "back",
        "next",
        "week",
        "if",
        "it",
        "does",
        "not",
        "go",
        "away",
        "how",
        "long",
        "have",
        "you",
        "had",
        "the",
        "cough",
        "fever",
        "headache",
    ]
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(count):
        n = int(rng.integers(8, 31))
        lines.append(" ".join(rng.choice(words, n)).capitalize() + ".")
    return lines


def main(argv: list[str] | None = None) -> int:
    import argparse

    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["serve"]:
        return serve(arguments[1:])

    parser = argparse.ArgumentParser(
        description="Build translation models of production shape with random weights (speed only)"
    )
    parser.add_argument("directory", type=Path, help="models are written below it, one folder each")
    parser.add_argument("--shape", choices=["nllb-600m", "opus-mt"], default="nllb-600m")
    parser.add_argument("--pairs", default="en-fr,en-es,en-ar", help="opus-mt: the language pairs to build")
    parser.add_argument(
        "--sentences",
        type=Path,
        help="text to train the SentencePiece model on, one sentence a line (e.g. NTREX-128 src.eng.txt): "
        "real text splits real words into about as many tokens as the real model does, and decoding "
        "length follows the token count (default: generated sentences, which split rare words finely)",
    )
    args = parser.parse_args(arguments)
    sentences = (
        [line for line in args.sentences.read_text(encoding="utf-8").splitlines() if line.strip()]
        if args.sentences
        else generated_sentences(2000)
    )
    if args.shape == "nllb-600m":
        print(build_synthetic_nllb(args.directory / "nllb-600m-synthetic", sentences))
        return 0
    for pair in args.pairs.split(","):
        source, target = pair.strip().split("-")
        print(
            build_synthetic_opus_mt(
                args.directory / f"opus-mt-{source}-{target}-synthetic", sentences, source, target
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
