"""Finding, installing and describing model files. Weights are never committed to the repository."""

from models.store import ModelNotFoundError, data_dir, resolve_whisper_model, translation_model_directories

__all__ = ["ModelNotFoundError", "data_dir", "resolve_whisper_model", "translation_model_directories"]
