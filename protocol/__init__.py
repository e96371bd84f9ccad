"""The public contracts every stage shares: languages, the caption event, signalling messages,
the ICE servers handed to clients.

Nothing in here does I/O. The server, the web client, the headless participant and the
benchmarks all speak these types; `docs/protocol.md` documents them for other clients.
"""

from protocol.captions import PROTOCOL_VERSION, CaptionEvent, TranslationPath
from protocol.glossary import Glossary, GlossaryError, GlossaryTerm
from protocol.ice import IceServer, IceServerError, ice_servers_from_json
from protocol.languages import LANGUAGES, Language, UnknownLanguageError, language

__all__ = [
    "LANGUAGES",
    "PROTOCOL_VERSION",
    "CaptionEvent",
    "Glossary",
    "GlossaryError",
    "GlossaryTerm",
    "IceServer",
    "IceServerError",
    "Language",
    "TranslationPath",
    "UnknownLanguageError",
    "ice_servers_from_json",
    "language",
]
