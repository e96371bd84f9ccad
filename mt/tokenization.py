"""Turning text into the token sequences each model family expects, and the model's tokens back into text.

CTranslate2 works on token strings, so these codecs own every family-specific convention: which language
tokens go where, and which output tokens are control tokens rather than text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from mt.errors import ModelLoadError
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

    replace_unknowns = False

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
    """OPUS-MT pairs: separate source and target SentencePiece models. Models trained for several target
    variants read one from a token before the sentence (`source_prefix`, e.g. ">>vie<<")."""

    replace_unknowns = False

    def __init__(self, source_model: Path, target_model: Path, *, source_prefix: str | None = None) -> None:
        self._source = spm.SentencePieceProcessor(model_file=str(source_model))
        self._target = spm.SentencePieceProcessor(model_file=str(target_model))
        self._prefix = [source_prefix] if source_prefix else []

    def encode(self, texts: list[str], source: str, target: str) -> EncodedBatch:
        pieces = self._source.encode([to_opus_mt_placeholders(t) for t in texts], out_type=str)
        return EncodedBatch(source=[[*self._prefix, *p, EOS] for p in pieces], target_prefix=None)

    def decode(self, tokens: list[str], target: str) -> str:
        return from_opus_mt_placeholders(_decode_known_pieces(self._target, tokens))


class ArgosCodec:
    """Argos Translate packages, as Argos itself tokenises them.

    The package's one SentencePiece model is the SOURCE side's: it encodes the input, and it must not
    decode the output (English pieces it does not know come back with "▁" left inside words: BLEU 1.8
    instead of 17 on NTREX-128 with the zh→en package). The output pieces are joined and "▁" turned
    into spaces instead. End-of-sentence marks are the model's business (its config.json says whether
    CTranslate2 adds one), so none is appended here; unknown output tokens are replaced by the source
    token they attend to, as Argos does.
    """

    replace_unknowns = True

    def __init__(self, source_model: Path, *, target_prefix: str | None = None) -> None:
        self._source = spm.SentencePieceProcessor(model_file=str(source_model))
        self._target_prefix = target_prefix

    def encode(self, texts: list[str], source: str, target: str) -> EncodedBatch:
        pieces = self._source.encode([to_opus_mt_placeholders(t) for t in texts], out_type=str)
        prefix = [[self._target_prefix] for _ in texts] if self._target_prefix else None
        return EncodedBatch(source=[list(p) for p in pieces], target_prefix=prefix)

    def decode(self, tokens: list[str], target: str) -> str:
        if self._target_prefix and tokens[:1] == [self._target_prefix]:
            tokens = tokens[1:]
        kept = [t for t in tokens if t not in _CONTROL_TOKENS]
        return from_opus_mt_placeholders("".join(kept).replace(SPACE_MARK, " ").strip())


Codec = SentencePieceCodec | MarianCodec | ArgosCodec

# The glossary's placeholders (mt/glossary.placeholder: "[1]") as OPUS-MT models see them. The Argos
# zh→en package drops or rewrites bracketed numbers ("[1]" kept in 30 of 48 placeholders put into 40
# TICO-19 sentences) but copies a letters+digits token ("ZX1": 45 of 48), so OPUS-MT-family codecs
# swap one for the other around the model call. The glossary's own form and policy stay unchanged.
_GLOSSARY_PLACEHOLDER = re.compile(r"\[(\d{1,3})\]")
_OPUS_MT_PLACEHOLDER = re.compile(r"(?<![A-Za-z0-9])[Zz][Xx] ?(\d{1,3})(?![0-9])")


def to_opus_mt_placeholders(text: str) -> str:
    return _GLOSSARY_PLACEHOLDER.sub(lambda m: f"ZX{m.group(1)}", text)


def from_opus_mt_placeholders(text: str) -> str:
    return _OPUS_MT_PLACEHOLDER.sub(lambda m: f"[{m.group(1)}]", text)


SPACE_MARK = "▁"  # U+2581: SentencePiece's word-start mark
_CONTROL_TOKENS = frozenset({"<s>", "</s>", "<unk>", "<pad>"})


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
