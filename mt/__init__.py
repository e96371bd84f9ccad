"""Machine translation: CTranslate2 models (Argos Translate packages, OPUS-MT/Marian, NLLB-200, M2M100,
decoder-only instruct models) behind one async engine.

`TranslationEngine.from_directory(models_dir)` loads every model subdirectory; `plan()` decides, per
spoken language and room, how each caption language is reached (mt/plan.py); `start()` translates one
utterance into every listener language and hands out each `Translation` as soon as it is ready (saying
how it was produced, `TranslationPath`, and by which models); `translate()` waits for them all. A model
directory is recognised by its files: metadata.json beside model/ is an Argos package (models/argos.py);
`babelcall.json` ({"family", "source", "target", "languages", "name"}, all optional; for "generator"
also "prompt_template" and "stop"; for "marian" optionally "source_prefix") wins for the rest; otherwise
source.spm + target.spm is a Marian pair named like "opus-mt-fr-en"; otherwise a SentencePiece model
plus a vocabulary holding "eng_Latn" is NLLB, or holding "__en__" is M2M100. The catalogue of known
models is mt/catalogue.py.
"""

from mt.catalogue import KNOWN_MODELS, KnownModel
from mt.engine import Priority, TranslationBusyError, TranslationEngine, UtteranceTranslation
from mt.errors import DeviceUnavailableError, ModelLoadError
from mt.families import ModelFamily
from mt.model import GeneratorModel, ScoredText, Seq2SeqModel, TranslationModel, load_model
from mt.partials import PartialTranslationPolicy
from mt.plan import TargetPlan, Translation, TranslationPlan
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
    "Priority",
    "Route",
    "ScoredText",
    "Seq2SeqModel",
    "TargetPlan",
    "Translation",
    "TranslationBusyError",
    "TranslationEngine",
    "TranslationModel",
    "TranslationPlan",
    "UtteranceTranslation",
    "load_model",
]
