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


class PromptTokenizer:
    """Tokenizer of a decoder-only model: a Hugging Face tokenizer.json (via the `tokenizers` package,
    which faster-whisper already installs) or a SentencePiece model."""

    def __init__(self, *, hf_file: Path | None = None, sp_file: Path | None = None, add_bos: bool = True):
        self._hf = None
        self._sp = None
        self._add_bos = add_bos
        if hf_file is not None:
            from tokenizers import Tokenizer

            self._hf = Tokenizer.from_file(str(hf_file))
        elif sp_file is not None:
            self._sp = spm.SentencePieceProcessor(model_file=str(sp_file))
        else:
            raise ValueError("a PromptTokenizer needs tokenizer.json or a SentencePiece model")

    @property
    def kind(self) -> str:
        return "tokenizer.json" if self._hf is not None else "sentencepiece"

    def encode(self, prompt: str) -> list[str]:
        if self._hf is not None:
            # The tokenizer's own post-processor decides about BOS; special tokens written in the
            # template (e.g. "<|im_start|>") are recognised as such.
            return list(self._hf.encode(prompt).tokens)
        assert self._sp is not None
        pieces = self._sp.encode(prompt, out_type=str)
        return [self._sp.id_to_piece(self._sp.bos_id()), *pieces] if self._add_bos else pieces

    def count(self, text: str) -> int:
        if self._hf is not None:
            return len(self._hf.encode(text, add_special_tokens=False).ids)
        assert self._sp is not None
        return len(self._sp.encode(text))

    def decode(self, tokens: list[str], ids: list[int]) -> str:
        if self._hf is not None:
            # CTranslate2's vocabulary is the tokenizer's, in id order, so ids decode directly.
            return self._hf.decode(ids, skip_special_tokens=True).strip()
        assert self._sp is not None
        return _decode_known_pieces(self._sp, tokens)


def load_prompt_tokenizer(directory: Path, *, add_bos: bool = True) -> PromptTokenizer:
    """tokenizer.json wins when the `tokenizers` package is importable; else the first SentencePiece model."""
    from mt.model import ModelLoadError  # the loader's error type; imported late to avoid a cycle

    hf_file = directory / "tokenizer.json"
    sp_files = [
        directory / "tokenizer.model",
        *sorted(directory.glob("*.model")),
        *sorted(directory.glob("*.spm")),
    ]
    sp_file = next((f for f in sp_files if f.is_file()), None)
    if hf_file.is_file():
        try:
            return PromptTokenizer(hf_file=hf_file)
        except ImportError:
            if sp_file is None:
                raise ModelLoadError(
                    f"{directory}: reading tokenizer.json needs the `tokenizers` package: "
                    "pip install tokenizers"
                ) from None
    if sp_file is not None:
        return PromptTokenizer(sp_file=sp_file, add_bos=add_bos)
    raise ModelLoadError(
        f"{directory}: no tokenizer: copy tokenizer.json (Hugging Face) or tokenizer.model (SentencePiece) "
        "next to model.bin (ct2-transformers-converter --copy_files tokenizer.json)"
    )
