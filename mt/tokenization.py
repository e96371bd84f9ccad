"""Turning text into the token sequences each model family expects, and the model's tokens back into text.

CTranslate2 works on token strings, so these codecs own every family-specific convention: which language
tokens go where, and which output tokens are control tokens rather than text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from mt.families import ModelFamily, language_token

EOS = "</s>"


@dataclass(frozen=True)
class EncodedBatch:
    source: list[list[str]]
    target_prefix: list[list[str]] | None


class SentencePieceCodec:
    """NLLB and M2M100: one shared SentencePiece model; language tokens choose the direction.

    Source is `[src_lang] + pieces + ["</s>"]` and the decoder is forced to start with `[tgt_lang]`, the
    convention of current Hugging Face tokenizers and CTranslate2's NLLB/M2M100 examples.
    """

    def __init__(self, family: ModelFamily, model_file: Path) -> None:
        self.family = family
        self._sp = spm.SentencePieceProcessor(model_file=str(model_file))

    def encode(self, texts: list[str], source: str, target: str) -> EncodedBatch:
        src_token = language_token(self.family, source)
        tgt_token = language_token(self.family, target)
        pieces = self._sp.encode(texts, out_type=str)
        return EncodedBatch(
            source=[[src_token, *p, EOS] for p in pieces],
            target_prefix=[[tgt_token] for _ in texts],
        )

    def decode(self, tokens: list[str], target: str) -> str:
        if tokens and tokens[0] == language_token(self.family, target):
            tokens = tokens[1:]
        return _decode_known_pieces(self._sp, tokens)


class MarianCodec:
    """OPUS-MT pairs: separate source and target SentencePiece models, no language tokens."""

    def __init__(self, source_model: Path, target_model: Path) -> None:
        self._source = spm.SentencePieceProcessor(model_file=str(source_model))
        self._target = spm.SentencePieceProcessor(model_file=str(target_model))

    def encode(self, texts: list[str], source: str, target: str) -> EncodedBatch:
        pieces = self._source.encode(texts, out_type=str)
        return EncodedBatch(source=[[*p, EOS] for p in pieces], target_prefix=None)

    def decode(self, tokens: list[str], target: str) -> str:
        return _decode_known_pieces(self._target, tokens)


Codec = SentencePieceCodec | MarianCodec


def _decode_known_pieces(sp: spm.SentencePieceProcessor, tokens: list[str]) -> str:
    # The CTranslate2 vocabulary also holds control tokens (language codes, </s>, madeupwordN) that the
    # SentencePiece model does not know; decoding them would print "⁇" into a patient's caption.
    unk_id = sp.unk_id()
    kept = [t for t in tokens if sp.piece_to_id(t) != unk_id and not sp.is_control(sp.piece_to_id(t))]
    return sp.decode_pieces(kept).strip()
