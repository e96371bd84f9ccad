"""Helpers shared by the benchmarks: where the dev data lives, text normalisation for WER/CER, machine and
version facts, summary statistics, RSS sampling and JSON output.

Kept dependency-light (numpy, psutil, jiwer) so every benchmark can import it.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO_ROOT.parent / "shared"

# Languages written without spaces: scored on characters (CER), WER is meaningless there.
CHARACTER_LANGUAGES = frozenset({"zh", "ja", "th"})


def require_shared(shared: Path) -> Path:
    """The shared dev-data directory, or exit with a message that says where it was expected."""
    if not (shared / "data" / "dev").is_dir():
        sys.exit(
            f"shared dev data not found at {shared} (expected {shared}/data/dev/...); "
            "benchmarks read it from ../shared next to the repository, or pass --shared"
        )
    return shared


# --- text normalisation -------------------------------------------------------------------------

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}  # fmt: skip


def _english_numbers_to_digits(words: list[str]) -> list[str]:
    """ "twenty one" -> "21", "one two three" -> "1 2 3", "three hundred" -> "300".

    Whisper writes most numbers as digits while references spell them out; converting both sides keeps
    that style difference out of the WER. Deliberately small: no ordinals, decimals or "and".
    """
    out: list[str] = []
    value: int | None = None
    last = ""  # kind of the previous number word: "unit", "tens" or "hundred"

    def flush() -> None:
        nonlocal value, last
        if value is not None:
            out.append(str(value))
        value, last = None, ""

    for word in words:
        if word in _UNITS:
            n = _UNITS[word]
            if value is not None and ((last == "tens" and n < 10) or last == "hundred"):
                value += n
            else:
                flush()
                value = n
            last = "unit"
        elif word in _TENS:
            if value is not None and last == "hundred":
                value += _TENS[word]
            else:
                flush()
                value = _TENS[word]
            last = "tens"
        elif word == "hundred" and value is not None and last == "unit" and value < 100:
            value *= 100
            last = "hundred"
        else:
            flush()
            out.append(word)
    flush()
    return out


def to_simplified_chinese(text: str) -> tuple[str, bool]:
    """Traditional -> simplified Chinese when the optional `opencc` package is installed.

    Returns the text and whether a conversion was possible; Whisper often writes Chinese in traditional
    characters, which would otherwise count as errors against simplified references.
    """
    try:
        import opencc  # type: ignore[import-not-found]  # optional: not a project dependency
    except ImportError:
        return text, False
    return opencc.OpenCC("t2s").convert(text), True


def normalise_text(text: str, language: str) -> str:
    """Lowercase, strip punctuation, numbers as digits (English), simplified characters (Chinese)."""
    text = unicodedata.normalize("NFKC", text).lower()
    if language == "zh":
        text, _ = to_simplified_chinese(text)
    text = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", text)  # thousands separators: "1,000" -> "1000"
    text = re.sub(r"['’]", "", text)  # "I've" -> "ive" on both sides rather than "i ve"
    # Every other punctuation or symbol separates words ("day-to-day" -> "day to day").
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    words = text.split()
    if language == "en":
        words = _english_numbers_to_digits(words)
    if language in CHARACTER_LANGUAGES:
        return "".join(words)
    return " ".join(words)


def error_rates(reference: str, hypothesis: str, language: str) -> dict[str, float | None]:
    """WER and CER of already-normalised texts; WER is None for languages scored on characters."""
    return corpus_error_rates([reference], [hypothesis], language)


def corpus_error_rates(
    references: Sequence[str], hypotheses: Sequence[str], language: str
) -> dict[str, float | None]:
    """Pooled (corpus-level) WER/CER over several normalised pairs; None where nothing can be scored."""
    pairs = [(r, h) for r, h in zip(references, hypotheses, strict=True) if r.strip()]
    if not pairs:
        return {"wer": None, "cer": None}
    refs = [r for r, _ in pairs]
    hyps = [h for _, h in pairs]
    wer = None if language in CHARACTER_LANGUAGES else float(jiwer.wer(refs, hyps))
    return {"wer": wer, "cer": float(jiwer.cer(refs, hyps))}


def _joined_with_owners(texts: Sequence[str]) -> tuple[str, list[int]]:
    """The texts' words joined into one text, and for each word the index of the text it came from."""
    owners = [i for i, text in enumerate(texts) for _ in text.split()]
    return " ".join(word for text in texts for word in text.split()), owners


def word_errors_per_unit(units: Sequence[str], hypothesis: str) -> list[int]:
    """Word errors (substitutions, deletions, insertions) of `hypothesis` against the reference `units`
    joined, charged to the unit each falls in; an insertion goes to the unit of the reference word that
    follows it (the last unit's at the end). Texts already normalised. The sum is WER's numerator."""
    words, owner = _joined_with_owners(units)
    errors = [0] * len(units)
    if not owner:
        return errors
    for chunk in jiwer.process_words(words, hypothesis).alignments[0]:
        if chunk.type == "insert":
            errors[owner[min(chunk.ref_start_idx, len(owner) - 1)]] += chunk.hyp_end_idx - chunk.hyp_start_idx
        elif chunk.type != "equal":
            for word in range(chunk.ref_start_idx, chunk.ref_end_idx):
                errors[owner[word]] += 1
    return errors


def split_reference_by_utterance(reference: str, utterances: Sequence[str]) -> list[tuple[int, str]]:
    """The reference cut where the hypothesis's utterances fall: (utterance index, its reference words)
    in order. A reference word goes to the utterance of the hypothesis word aligned to it; a word the
    hypothesis left out goes to the utterance before it. Texts already normalised."""
    words = reference.split()
    hypothesis, utterance_of = _joined_with_owners(utterances)
    if not words or not utterance_of:
        return [(0, " ".join(words))] if words else []
    aligned: dict[int, int] = {}
    for chunk in jiwer.process_words(" ".join(words), hypothesis).alignments[0]:
        if chunk.type in ("equal", "substitute"):
            for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                aligned[chunk.ref_start_idx + k] = utterance_of[chunk.hyp_start_idx + k]
    pieces: list[tuple[int, list[str]]] = []
    current = utterance_of[0]
    for index, word in enumerate(words):
        current = aligned.get(index, current)
        if pieces and pieces[-1][0] == current:
            pieces[-1][1].append(word)
        else:
            pieces.append((current, [word]))
    return [(utterance, " ".join(piece)) for utterance, piece in pieces]


def relative_error_interval(
    errors: Sequence[int], baseline_errors: Sequence[int], *, level: float = 0.95, resamples: int = 2000
) -> tuple[float, float] | None:
    """Paired bootstrap interval of sum(errors) / sum(baseline_errors) - 1, resampling the reference units
    with replacement: how far a relative figure on this dev set can be trusted. A 9.7-minute file has
    about 100 turns, and a handful of misheard ones moves the ratio by tens of percent. None when the
    baseline makes too few errors for a ratio."""
    ours, theirs = np.asarray(errors, dtype=float), np.asarray(baseline_errors, dtype=float)
    if ours.size == 0 or ours.size != theirs.size or theirs.sum() == 0:
        return None
    picks = np.random.default_rng(0).integers(0, ours.size, size=(resamples, ours.size))
    ours_sum, theirs_sum = ours[picks].sum(axis=1), theirs[picks].sum(axis=1)
    usable = theirs_sum > 0
    if usable.mean() < 0.99:
        return None
    ratios = ours_sum[usable] / theirs_sum[usable] - 1
    low, high = np.percentile(ratios, [50 * (1 - level), 50 * (1 + level)])
    return round(float(low), 4), round(float(high), 4)


# --- statistics ---------------------------------------------------------------------------------


def summarise(values: Iterable[float]) -> dict[str, float | int | None]:
    """n, median, p90, p95, max and mean: the figures benchmarks report (medians and tails, not means
    alone)."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {"n": 0, "median": None, "p90": None, "p95": None, "max": None, "mean": None}
    return {
        "n": int(arr.size),
        "median": round(float(np.median(arr)), 4),
        "p90": round(float(np.percentile(arr, 90)), 4),
        "p95": round(float(np.percentile(arr, 95)), 4),
        "max": round(float(arr.max()), 4),
        "mean": round(float(arr.mean()), 4),
    }


# --- machine, versions, output ------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(affinity) if affinity is not None else os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),  # >= cores: other work competes for CPU
    }


def package_versions(*names: str) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_json(path: Path, data: Any) -> None:
    """Write atomically, so a benchmark killed mid-write never leaves half a results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n")
    tmp.replace(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class RssSampler:
    """Samples this process's resident memory every `interval_s` on a daemon thread.

    A thread rather than an asyncio task, so a blocked event loop does not leave gaps in the record.
    Samples are (seconds since start, RSS MiB, label); `label` names the phase running at the time.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, float, str]] = []
        self.label = ""
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = time.perf_counter()

    def __enter__(self) -> RssSampler:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval_s):
                return

    def sample(self) -> float:
        rss = self._process.memory_info().rss / 2**20
        self.samples.append((round(time.perf_counter() - self._t0, 2), round(rss, 1), self.label))
        return rss
