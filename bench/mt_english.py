"""Which English should a reader of a Chinese speaker get: Whisper's own speech translation, or Whisper's
Chinese transcript through a text translation model?

For every real Chinese clip in ../shared/data/dev/speech (zh_*), decoded offline with the built-in
Whisper base model (faster-whisper, CPU int8):

  (a) transcript + text model: Whisper transcribes (task="transcribe", language="zh"), then the installed
      zh→en model translates the transcript (e.g. the Argos zh→en package), as the caption pipeline does;
  (b) Whisper's translation: task="translate", language="zh".

Both are scored (sacrebleu BLEU and chrF) against reference English translations written for this
benchmark by the BabelCall developers (REFERENCES below; not from the clips' sources), with the CPU time
(process time) each path took. Two clips are a small sample: read the outputs, not only the scores.

    .venv/bin/python -m bench.mt_english [--models-dir DIR] [--out bench/out/mt_english]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_SHARED, machine_info, package_versions, require_shared, write_json

# Written by the BabelCall developers for this benchmark: an idiomatic and a literal rendering each.
REFERENCES = {
    "zh_uberi_chinese.flac": ["Shoot yourself in the foot.", "Drop a rock on your own foot."],
    "zh_funasr_asr_example.wav": [
        "Welcome, everyone, to try the speech recognition model launched by DAMO Academy.",
        "Everyone is welcome to come and experience the speech recognition model released by the "
        "DAMO Academy.",
    ],
}


def transcribe(model: Any, audio: Any, task: str) -> tuple[str, float]:
    started = time.process_time()
    segments, _ = model.transcribe(
        audio, language="zh", task=task, beam_size=5, condition_on_previous_text=False, vad_filter=False
    )
    text = " ".join(segment.text.strip() for segment in segments).strip()
    return text, time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models-dir", type=Path, default=None, help="default: where `babelcall serve` looks"
    )
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/out/mt_english"))
    args = parser.parse_args(argv)
    machine = machine_info()  # the load average before this run adds its own

    import sacrebleu
    from faster_whisper import WhisperModel, decode_audio

    from models import resolve_whisper_model
    from mt import TranslationEngine
    from server.models_cli import default_models_dir

    speech = require_shared(args.shared) / "data" / "dev" / "speech"
    clips = sorted(p for p in speech.glob("zh_*") if p.name in REFERENCES)
    engine = TranslationEngine.from_directory(
        args.models_dir or default_models_dir(), cpu_threads=args.threads
    )
    text_model = next((m for m in engine.models if m.covers("zh", "en")), None)
    if text_model is None:
        print(
            "no zh→en translation model installed: `babelcall models pull translate-zh_en`", file=sys.stderr
        )
        return 2
    whisper = WhisperModel(
        str(resolve_whisper_model("base")), device="cpu", compute_type="int8", cpu_threads=args.threads
    )

    rows = []
    for clip in clips:
        audio = decode_audio(str(clip), sampling_rate=16_000)
        transcript, transcribe_cpu = transcribe(whisper, audio, "transcribe")
        started = time.process_time()
        via_text = text_model.translate_batch([transcript], "zh", "en")[0] if transcript else ""
        text_cpu = time.process_time() - started
        whisper_english, translate_cpu = transcribe(whisper, audio, "translate")
        rows.append(
            {
                "clip": clip.name,
                "seconds": round(len(audio) / 16_000, 2),
                "references": REFERENCES[clip.name],
                "transcript": transcript,
                "transcript_plus_text_model": via_text,
                "whisper_translate": whisper_english,
                "cpu_s": {
                    "transcribe": round(transcribe_cpu, 3),
                    "text_model": round(text_cpu, 3),
                    "whisper_translate": round(translate_cpu, 3),
                },
            }
        )
    references = [list(refs) for refs in zip(*(REFERENCES[r["clip"]] for r in rows), strict=True)]
    scores = {}
    for path in ("transcript_plus_text_model", "whisper_translate"):
        hypotheses = [r[path] for r in rows]
        scores[path] = {
            "bleu": round(sacrebleu.corpus_bleu(hypotheses, references).score, 1),
            "chrf": round(sacrebleu.corpus_chrf(hypotheses, references).score, 1),
        }
    report = {
        "benchmark": "mt_english",
        "machine": machine,
        "versions": package_versions("faster-whisper", "ctranslate2", "sentencepiece", "sacrebleu"),
        "whisper": "base (built in), CPU int8, beam 5",
        "text_model": text_model.name,
        "text_model_beam": getattr(text_model, "beam_size", None),
        "references_by": "the BabelCall developers (written for this benchmark)",
        "clips": rows,
        "scores": scores,
    }
    for row in rows:
        print(f"{row['clip']}: transcript {row['transcript']!r}")
        print(f"  (a) transcript + {text_model.name}: {row['transcript_plus_text_model']!r}")
        print(f"  (b) Whisper translate:           {row['whisper_translate']!r}")
        print(f"  cpu s: {row['cpu_s']}")
    for path, figures in scores.items():
        print(f"{path}: BLEU {figures['bleu']} chrF {figures['chrf']}")
    write_json(args.out / "results.json", report)
    print(f"wrote {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
