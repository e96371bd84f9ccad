"""Server configuration: embedded defaults, overridden by a TOML file, then by BABELCALL_* variables.

Every field has a default that runs on a laptop: SQLite in the data directory, CPU inference, the
built-in Whisper base model, no translation model. `describe()` is what start-up prints.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from models import data_dir


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(default_factory=data_dir)  # SQLite database and assembled models
    # Speech recognition
    whisper_model: str = "base"  # "base" (built in, from PyPI) or a CTranslate2 Whisper directory
    asr_device: str = "cpu"  # "cpu", "cuda" or "auto"
    asr_compute_type: str = "int8"  # "default": int8 on CPU, float16 on GPU
    cpu_threads: int = 2
    silence_ms: int = 600
    max_utterance_s: float = 15.0
    partial_interval_s: float = 1.0
    asr_max_batch: int = 0  # streams decoded in one batched call; 0: 8 on GPU, 1 on CPU
    asr_prep_threads: int = 0  # threads for VAD and log-mel features; 0: none on CPU, up to 8 on GPU
    asr_speculative_finals: bool = True  # decode a final during its closing silence (see asr/config.py)
    asr_context_s: float = 0.0  # seconds of a speaker's previous finals decoded before each final
    asr_short_final_windows: bool = False  # finals encoded in utterance-sized windows: faster, less accurate
    # Speed benchmarks with random-weight models only (models/synthetic_whisper.py); 0 in production.
    asr_synthetic_tokens_per_s: float = 0.0
    # Translation: every CTranslate2 model directory under this folder is loaded
    translation_models_dir: Path | None = None  # default: <data_dir>/models/translation
    mt_device: str = "cpu"
    mt_compute_type: str = "int8"
    mt_beam_size: int = 2  # 1 (greedy): up to ~20% faster on CPU, at some cost in quality (bench/RESULTS.md)
    # Spoken languages whose English comes from Whisper's speech translation even where a text model
    # translates them (default: the text model; Whisper base's zh translation measured worse).
    mt_prefer_whisper_english: tuple[str, ...] = ()
    # WebRTC
    media_workers: int = 0  # processes running the peer connections (rooms pinned to one); 0: cores / 4
    ice_servers: tuple[str, ...] = ()  # e.g. ("stun:stun.example.org:3478",); none keeps traffic local
    loopback_candidates: bool = True  # offer 127.0.0.1 so browsers on this machine connect
    # Limits
    max_review_participants: int = 12
    max_message_bytes: int = 65_536  # one WebSocket message (an SDP offer is ~5 kB)
    metrics_token: str = ""  # when set, GET /metrics needs "Authorization: Bearer <token>"
    session_days: int = 14
    # Failed sign-ins allowed within signin_window_s, per account and per client address, before
    # further tries are refused until the oldest expires; 0 turns a limit off (behind a proxy every
    # client has the proxy's address).
    signin_failures_per_email: int = 5
    signin_failures_per_address: int = 50
    signin_window_s: float = 900.0
    cookie_secure: bool = False  # set true behind an HTTPS proxy; implied by tls_cert
    # HTTPS served directly (PEM files): browsers give a page the microphone and camera only on
    # https:// or on localhost, so participants on other machines need one or an HTTPS proxy in front.
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def database_path(self) -> Path:
        return self.data_dir / "babelcall.sqlite3"

    @property
    def translation_dir(self) -> Path:
        return self.translation_models_dir or self.data_dir / "models" / "translation"

    @property
    def media_worker_count(self) -> int:
        # One worker's event loop carries ~25 speakers on a slow core (docs/scaling.md); a quarter of
        # the cores leaves the rest to recognition, translation and the server's own loop.
        return self.media_workers or max(1, (os.cpu_count() or 1) // 4)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_cert else 'http'}://{self.host}:{self.port}/"

    @property
    def secure_cookies(self) -> bool:
        return self.cookie_secure or self.tls_cert is not None

    def tls_context(self) -> ssl.SSLContext | None:
        """The server's TLS context when `tls_cert` is set; ConfigError if the files cannot be used."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"cannot use tls_cert {self.tls_cert} with tls_key {self.tls_key}: {error}"
            ) from error
        return context

    def describe(self) -> str:
        lines = ["BabelCall configuration:"]
        for f in fields(self):
            value = getattr(self, f.name)
            shown = ("(set)" if value else "(not set)") if f.name in _SECRETS else value
            lines.append(f"  {f.name} = {shown!s}")
        lines.append(
            f"  (database: {self.database_path}; translation models: {self.translation_dir}; "
            f"media workers: {self.media_worker_count})"
        )
        return "\n".join(lines)


ENV_PREFIX = "BABELCALL_"
_SECRETS = frozenset({"metrics_token"})


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Defaults < TOML file (`path`, or $BABELCALL_CONFIG) < BABELCALL_<FIELD> variables."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    config_file = path or (Path(env["BABELCALL_CONFIG"]) if env.get("BABELCALL_CONFIG") else None)
    if config_file is not None:
        try:
            values.update(tomllib.loads(config_file.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read config file {config_file}: {error}") from error
    for f in fields(Config):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None:
            values[f.name] = raw
    known = {f.name: f for f in fields(Config)}
    unknown = sorted(set(values) - known.keys())
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
    converted = {name: convert_field(known[name], value) for name, value in values.items()}
    config = dataclasses.replace(Config(), **converted)
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("tls_cert and tls_key go together: set both (PEM files) or neither")
    return config


def convert_field(spec: dataclasses.Field[Any], value: Any) -> Any:
    """A setting's text (file or environment) as the field's type; ConfigError if it is not one."""
    kind = str(spec.type)
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(value)
            return lowered in {"1", "true", "yes", "on"}
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind.startswith("tuple"):
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            return tuple(str(item).strip() for item in items if str(item).strip())
        if "Path" in kind:
            return Path(str(value)).expanduser() if value not in (None, "") else None
        return str(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"bad value for {spec.name}: {value!r} (expected {kind})") from error
