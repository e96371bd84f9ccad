"""Server configuration: embedded defaults, overridden by a TOML file, then by BABELCALL_* variables.

Every field has a default that runs on a laptop: SQLite in the data directory, CPU inference, the
built-in Whisper base model, no translation model. `describe()` is what start-up prints.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import ssl
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from models import data_dir
from server.security import normalise_origin


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
    asr_short_final_windows: bool = True  # finals encoded in utterance-sized windows: faster, less accurate
    # The second pass that settles finals with the speech around them in view (asr/settle.py)
    asr_second_pass: bool = True
    asr_settle_pause_s: float = 1.5  # a speaker's pause that lets their finals be settled...
    asr_settle_window_s: float = 8.0  # ...or this much of their unsettled speech (a monologue)...
    asr_settle_wait_s: float = 8.0  # ...or once the oldest of their unsettled finals ended this long ago
    asr_settle_left_context_s: float = 10.0  # their newest settled lines, this far back, heard again first
    asr_settle_beam_size: int = 5  # beam width of the second pass's decodes; 1: greedy (less CPU)
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
    ice_servers: tuple[str, ...] = ()  # STUN URLs, e.g. ("stun:stun.example.org:3478",); none: local only
    # TURN relays for clients behind firewalls (coturn with use-auth-secret; README, "Across hospital
    # networks"), e.g. ("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:443").
    # Signed-in members get credentials from GET /api/ice that expire after turn_credential_ttl_s.
    # Clients fetch them on each (re)join and open every peer connection of that call with them (a
    # subscription to someone who starts publishing hours later included), and coturn refuses a new
    # relay once they have expired: 12 hours outlasts any consultation or case review, while a
    # credential copied out of a browser is useless by the next day.
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""  # coturn's static-auth-secret
    turn_credential_ttl_s: int = 43_200
    loopback_candidates: bool = True  # offer 127.0.0.1 so browsers on this machine connect
    # Limits
    max_review_participants: int = 12
    max_message_bytes: int = 65_536  # one WebSocket message (an SDP offer is ~5 kB)
    metrics_token: str = ""  # when set, GET /metrics needs "Authorization: Bearer <token>"
    # Without a token, /metrics answers only on a server bound to a loopback address, unless this says
    # that anyone who can reach the server may read it.
    metrics_public: bool = False
    session_days: int = 14
    # Failed sign-ins allowed within signin_window_s, per account and per client address, before
    # further tries are refused until the oldest expires; 0 turns a limit off (behind a proxy every
    # client has the proxy's address).
    signin_failures_per_email: int = 5
    signin_failures_per_address: int = 50
    signin_window_s: float = 900.0
    # Applications for membership accepted per client address within applications_window_s (0: no
    # limit); each one costs a password hash.
    applications_per_address: int = 10
    applications_window_s: float = 3600.0
    # Origins (scheme://host[:port]) whose pages may make state-changing requests and open WebSockets,
    # besides the server's own; for a proxy in front that rewrites the Host header (server/security.py).
    allowed_origins: tuple[str, ...] = ()
    cookie_secure: bool = False  # set true behind an HTTPS proxy; implied by tls_cert
    # HTTPS served directly (PEM files): browsers give a page the microphone and camera only on
    # https:// or on localhost, so participants on other machines need one or an HTTPS proxy in front.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Consultation records (server/records.py): their words are sealed with the key in this file, made
    # (mode 0600) at first start; keep it outside the data directory's backups where policy allows.
    record_key_file: Path | None = None  # default: <data_dir>/record.key
    record_retention_days: int = 30  # records are deleted this many days after they started

    def __post_init__(self) -> None:
        origins = []
        for text in self.allowed_origins:
            origin = normalise_origin(text)
            if origin is None:
                raise ConfigError(
                    f"allowed_origins: {text!r} is not an origin like https://babelcall.example.org"
                )
            origins.append(origin)
        object.__setattr__(self, "allowed_origins", tuple(origins))

    @property
    def database_path(self) -> Path:
        return self.data_dir / "babelcall.sqlite3"

    @property
    def record_key_path(self) -> Path:
        return self.record_key_file or self.data_dir / "record.key"

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
    def loopback_only(self) -> bool:
        """Whether the server listens on a loopback address only, unreachable from other machines."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: it may resolve to any address
            return False

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
        """The configuration by the stage each setting configures, as `serve` prints it at start-up."""
        lines = ["BabelCall configuration:"]
        for stage, (title, names) in STAGES.items():
            lines.append(f"  [{stage}] {title}")
            for name in names:
                value = getattr(self, name)
                shown = ("(set)" if value else "(not set)") if name in _SECRETS else value
                lines.append(f"    {name} = {shown!s}")
        lines.append(
            f"  (database: {self.database_path}; translation models: {self.translation_dir}; "
            f"media workers: {self.media_worker_count})"
        )
        return "\n".join(lines)


ENV_PREFIX = "BABELCALL_"
_SECRETS = frozenset({"metrics_token", "turn_secret"})
# Every setting under the stage it configures: how start-up prints them, and the tables a TOML file
# may group them in (`[asr]` then `silence_ms = 300`; a top-level `silence_ms` works too).
STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "server": ("where it listens and keeps its data", ("host", "port", "data_dir", "tls_cert", "tls_key")),
    "asr": (
        "speech recognition (asr/)",
        (
            "whisper_model",
            "asr_device",
            "asr_compute_type",
            "cpu_threads",
            "silence_ms",
            "max_utterance_s",
            "partial_interval_s",
            "asr_max_batch",
            "asr_prep_threads",
            "asr_speculative_finals",
            "asr_context_s",
            "asr_short_final_windows",
            "asr_second_pass",
            "asr_settle_pause_s",
            "asr_settle_window_s",
            "asr_settle_wait_s",
            "asr_settle_left_context_s",
            "asr_settle_beam_size",
        ),
    ),
    "mt": (
        "translation (mt/)",
        (
            "translation_models_dir",
            "mt_device",
            "mt_compute_type",
            "mt_beam_size",
            "mt_prefer_whisper_english",
        ),
    ),
    "media": (
        "WebRTC media (media/)",
        (
            "media_workers",
            "ice_servers",
            "turn_urls",
            "turn_secret",
            "turn_credential_ttl_s",
            "loopback_candidates",
        ),
    ),
    "calls": ("calls and messages", ("max_review_participants", "max_message_bytes")),
    "security": (
        "sign-in, sessions and who may ask",
        (
            "session_days",
            "cookie_secure",
            "allowed_origins",
            "signin_failures_per_email",
            "signin_failures_per_address",
            "signin_window_s",
            "applications_per_address",
            "applications_window_s",
            "metrics_token",
            "metrics_public",
        ),
    ),
    "records": ("consultation records", ("record_key_file", "record_retention_days")),
}


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Defaults < TOML file (`path`, or $BABELCALL_CONFIG) < BABELCALL_<FIELD> variables."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    config_file = path or (Path(env["BABELCALL_CONFIG"]) if env.get("BABELCALL_CONFIG") else None)
    if config_file is not None:
        try:
            values.update(_flatten(tomllib.loads(config_file.read_text())))
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
    _check_ice_settings(config)
    if config.record_retention_days < 1:
        raise ConfigError("record_retention_days must be at least 1")
    if config.asr_settle_beam_size < 1:
        raise ConfigError("asr_settle_beam_size must be a beam width: 1 (greedy) or more")
    return config


# The URL forms aiortc and browsers both accept (RFC 7064, RFC 7065).
_STUN_URL = re.compile(r"stun:[^?:/\s]+(:\d{1,5})?")
_TURN_URL = re.compile(
    r"turn:[^?:/\s]+(:\d{1,5})?(\?transport=(udp|tcp))?|turns:[^?:/\s]+(:\d{1,5})?(\?transport=tcp)?"
)


def _check_ice_settings(config: Config) -> None:
    for url in config.ice_servers:
        if not _STUN_URL.fullmatch(url):
            raise ConfigError(
                f"bad ice_servers entry {url!r}: ice_servers holds STUN URLs (stun:HOST[:PORT]); "
                "TURN servers go in turn_urls, with turn_secret"
            )
    for url in config.turn_urls:
        if not _TURN_URL.fullmatch(url):
            raise ConfigError(
                f"bad turn_urls entry {url!r}: expected turn:HOST[:PORT][?transport=udp|tcp] "
                "or turns:HOST[:PORT][?transport=tcp]"
            )
    if config.turn_urls and not config.turn_secret:
        raise ConfigError("turn_urls need turn_secret: the static-auth-secret of the TURN server")
    if config.turn_secret and not config.turn_urls:
        raise ConfigError("turn_secret is set but turn_urls is empty: list the TURN server's URLs")
    if config.turn_credential_ttl_s <= 0:
        raise ConfigError("turn_credential_ttl_s must be a positive number of seconds")


def _flatten(document: dict[str, Any]) -> dict[str, Any]:
    """A TOML document's settings, from the top level and from each stage's table."""
    values: dict[str, Any] = {}
    for key, value in document.items():
        if key in STAGES and isinstance(value, dict):
            unknown = sorted(set(value) - set(STAGES[key][1]))
            if unknown:
                raise ConfigError(f"[{key}] has no settings {', '.join(unknown)}")
            values.update(value)
        else:
            values[key] = value
    return values


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
