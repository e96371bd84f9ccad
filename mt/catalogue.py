"""Translation models known to work with BabelCall: the catalogue now lives in models/catalogue.py.

Re-exported here so existing `mt.catalogue` imports keep working (mt/ may import models/, never the reverse).
"""

from models.catalogue import (
    ALL_LANGUAGES,
    KNOWN_MODELS,
    M2M100_418M,
    NLLB_600M,
    TRANSLATION_MODELS,
    KnownModel,
    find_known,
    missing_model_hint,
    recommended_model,
)

__all__ = [
    "ALL_LANGUAGES",
    "KNOWN_MODELS",
    "M2M100_418M",
    "NLLB_600M",
    "TRANSLATION_MODELS",
    "KnownModel",
    "find_known",
    "missing_model_hint",
    "recommended_model",
]
