"""Machine translation: CTranslate2 models (NLLB-200, M2M100, OPUS-MT/Marian, decoder-only instruct
models) behind one async engine.

`TranslationEngine.from_directory(models_dir)` loads every model subdirectory; `start()` translates one
utterance into every listener language and hands out each `Translation` as soon as it is ready (saying
how it was produced: `TranslationPath`); `translate()` waits for them all. A model directory is
recognised by its files: `babelcall.json` ({"family", "source", "target", "languages", "name"}, all
optional; for "generator" also "prompt_template" and "stop") wins; otherwise source.spm + target.spm is a
Marian pair named like "opus-mt-fr-en"; otherwise a SentencePiece model plus a vocabulary holding
"eng_Latn" is NLLB, or holding "__en__" is M2M100. The catalogue of known models is models/catalogue.py.
"""

from mt.catalogue import KNOWN_MODELS, KnownModel
from mt.engine import Translation, TranslationBusyError, TranslationEngine, UtteranceTranslation
from mt.families import ModelFamily
from mt.model import (
    DeviceUnavailableError,
    GeneratorModel,
    ModelLoadError,
    Seq2SeqModel,
    TranslationModel,
    load_model,
)
from mt.partials import PartialTranslationPolicy
from mt.routing import Hop, Route

__all__ = [
    "KNOWN_MODELS",
    "DeviceUnavailableError",
    "GeneratorModel",
    "Hop",
    "KnownModel",
    "ModelFamily",
    "ModelLoadError",
    "PartialTranslationPolicy",
    "Route",
    "Seq2SeqModel",
    "Translation",
    "TranslationBusyError",
    "TranslationEngine",
    "TranslationModel",
    "UtteranceTranslation",
    "load_model",
]
