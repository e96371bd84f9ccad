"""Whisper-shaped CTranslate2 models with seeded random weights, for speed measurements only.

Production-size weights (large-v3-turbo and the like) cannot be downloaded on the machines where we
benchmark, and they would not fit through the GPU machine's 64 MiB transfer limit anyway. The cost of
a model depends on its shape, not its values, so a model of the real shape with random weights times
the real work. Its output is meaningless: every figure measured with one must be labelled
"synthetic weights: speed only". Random weights never decide to stop on their own, so recognition
with them needs `ForcedLengthDecoder`: it decodes a set number of tokens per second of audio, at
temperature 0, without the quality guards. `python -m bench.synthetic serve --whisper-tokens-per-s N`
runs the BabelCall server with it (bench/load.py --synthetic-tokens-per-s starts the server that way).

    python -m bench.synthetic_whisper build OUT_DIR --shape large-v3-turbo --tokenizer-from BASE_MODEL_DIR
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ctranslate2.specs import WhisperSpec, model_spec
from faster_whisper.tokenizer import Tokenizer

from asr.decoder import Attempt, WhisperDecoder

_ENCODER_POSITIONS = 1500  # 30 s of audio after the encoder's stride-2 convolution
_DECODER_POSITIONS = 448


@dataclass(frozen=True)
class WhisperShape:
    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    n_mels: int


SHAPES: dict[str, WhisperShape] = {
    "base": WhisperShape(512, 6, 6, 8, 80),
    "small": WhisperShape(768, 12, 12, 12, 80),
    "large-v3-turbo": WhisperShape(1280, 32, 4, 20, 128),
    "large-v3": WhisperShape(1280, 32, 32, 20, 128),
}


def _shape(scope: str, shape: WhisperShape, vocab: int) -> tuple[int, ...]:
    d, ffn = shape.d_model, 4 * shape.d_model
    leaf = scope.split("/")[-1]
    if "conv1" in scope:
        return (d, shape.n_mels, 3) if leaf == "weight" else (d,)
    if "conv2" in scope:
        return (d, d, 3) if leaf == "weight" else (d,)
    if scope.endswith("position_encodings/encodings"):
        return (_ENCODER_POSITIONS if scope.startswith("encoder") else _DECODER_POSITIONS, d)
    if scope.endswith(("embeddings/weight", "projection/weight")):
        return (vocab, d)
    if scope.endswith("projection/bias"):
        return (vocab,)
    if leaf in ("gamma", "beta"):
        return (d,)
    match = re.search(r"(self_attention|attention|ffn)/linear_(\d)/(weight|bias)$", scope)
    if match is None:
        raise ValueError(f"no shape rule for {scope}")
    block, index, kind = match.group(1), int(match.group(2)), match.group(3)
    rows = {
        ("self_attention", 0): 3 * d,  # fused query/key/value
        ("self_attention", 1): d,
        ("attention", 0): d,  # cross-attention query
        ("attention", 1): 2 * d,  # fused key/value over the encoder output
        ("attention", 2): d,
        ("ffn", 0): ffn,
        ("ffn", 1): d,
    }[(block, index)]
    columns = ffn if (block, index) == ("ffn", 1) else d
    return (rows, columns) if kind == "weight" else (rows,)


def build(directory: Path, shape_name: str, tokenizer_from: Path, seed: int = 0) -> Path:
    """Save a random-weight Whisper of `shape_name`, borrowing the tokenizer and language ids of a real
    multilingual model (the built-in base model) so faster-whisper can load and run it."""
    shape = SHAPES[shape_name]
    vocabulary = (tokenizer_from / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    config = json.loads((tokenizer_from / "config.json").read_text())
    spec = WhisperSpec(shape.encoder_layers, shape.heads, shape.decoder_layers, shape.heads)
    rng = np.random.default_rng(seed)

    def fill(layer: model_spec.LayerSpec, scope: str, value: object) -> None:
        # Position encodings are optional in the generic spec (sinusoids by default) but Whisper
        # learns them, and its loader requires them.
        if value is None or scope.endswith("position_encodings/encodings"):
            dims = _shape(scope, shape, len(vocabulary))
            # Small values keep activations finite in float16; ones for norms keep them meaningful.
            array = np.ones(dims) if scope.endswith("gamma") else rng.normal(0.0, 0.02, dims)
            setattr(layer, scope.split("/")[-1], array.astype(np.float16))

    model_spec.visit_spec(spec, fill)
    spec.register_vocabulary(vocabulary)
    for key in ("suppress_ids", "suppress_ids_begin", "lang_ids", "alignment_heads"):
        setattr(spec.config, key, config[key])
    spec.validate()
    spec.optimize()
    directory.mkdir(parents=True, exist_ok=True)
    spec.save(str(directory))
    shutil.copyfile(tokenizer_from / "tokenizer.json", directory / "tokenizer.json")
    # faster-whisper sizes its log-mel features from this file (large-v3 shapes use 128 mel bins).
    (directory / "preprocessor_config.json").write_text(
        json.dumps(
            {"feature_size": shape.n_mels, "sampling_rate": 16000, "hop_length": 160, "chunk_length": 30}
        )
    )
    (directory / "SYNTHETIC").write_text(f"random weights, shape {shape_name}, seed {seed}: speed only\n")
    return directory


def is_synthetic(directory: Path) -> bool:
    return (directory / "SYNTHETIC").is_file()


class ForcedLengthDecoder(WhisperDecoder):
    """Decodes exactly `tokens_per_s` tokens per second of audio (speech runs at about 3-4 Whisper
    tokens a second), at temperature 0, and keeps whatever random weights write: the guards would
    judge noise, and the text's length is what a speed measurement is about."""

    def __init__(self, *args: Any, tokens_per_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tokens_per_s = tokens_per_s

    def new_token_limit(self, audio_s: float) -> int:
        return math.ceil(self._tokens_per_s * audio_s)

    def temperatures(self, final: bool) -> tuple[float, ...]:
        return (0.0,)

    def suppressed_tokens(self, tokenizer: Tokenizer) -> list[int]:
        return [*super().suppressed_tokens(tokenizer), tokenizer.eot]  # never stop early

    def verdict(self, attempt: Attempt) -> str | None:
        return attempt.text

    def clean(self, text: str, utterance_s: float, language: str) -> str:
        return text


def forced_length_decoder(tokens_per_s: float) -> functools.partial[ForcedLengthDecoder]:
    """A `decoder_factory` for asr.SpeechRecognizer."""
    return functools.partial(ForcedLengthDecoder, tokens_per_s=tokens_per_s)


def use_forced_length_whisper(tokens_per_s: float) -> None:
    """Make the server started in this process recognise with a ForcedLengthDecoder
    (`python -m bench.synthetic serve --whisper-tokens-per-s N` calls this)."""
    import server.app
    from asr import SpeechRecognizer

    # The server builds its recogniser in server.app; only this benchmark process is changed.
    server.app.SpeechRecognizer = functools.partial(  # type: ignore[misc]
        SpeechRecognizer, decoder_factory=forced_length_decoder(tokens_per_s)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_args = commands.add_parser("build", help="save a random-weight Whisper model")
    build_args.add_argument("out", type=Path)
    build_args.add_argument("--shape", choices=sorted(SHAPES), default="large-v3-turbo")
    build_args.add_argument(
        "--tokenizer-from", type=Path, required=True, help="a real multilingual Whisper dir"
    )
    build_args.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build(args.out, args.shape, args.tokenizer_from, args.seed))


if __name__ == "__main__":
    main()
