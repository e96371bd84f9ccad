"""Machine translation: CTranslate2 models (NLLB-200, M2M100, OPUS-MT/Marian) behind one async engine.

`TranslationEngine.from_directory(models_dir)` loads every model subdirectory; `translate()` returns one
`Translation` per listener language, saying how it was produced (`TranslationPath`). A model directory is
recognised by its files: `babelcall.json` ({"family", "source", "target", "languages", "name"}, all
optional) wins; otherwise source.spm + target.spm is a Marian pair named like "opus-mt-fr-en"; otherwise a
SentencePiece model plus a vocabulary holding "eng_Latn" is NLLB, or holding "__en__" is M2M100.
"""

from mt.catalogue import KNOWN_MODELS, KnownModel
from mt.engine import Translation, TranslationEngine
from mt.families import ModelFamily
from mt.model import ModelLoadError, TranslationModel, load_model
from mt.routing import Hop, Route

__all__ = [
    "KNOWN_MODELS",
    "Hop",
    "KnownModel",
    "ModelFamily",
    "ModelLoadError",
    "Route",
    "Translation",
    "TranslationEngine",
    "TranslationModel",
    "load_model",
]
