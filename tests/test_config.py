"""Configuration: embedded defaults < TOML file < BABELCALL_* environment variables."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.asr_stream import _recognizer_overrides
from server.config import Config, ConfigError, load_config


def test_defaults_run_locally_on_cpu(tmp_path: Path) -> None:
    config = load_config(environ={"BABELCALL_DATA_DIR": str(tmp_path)})
    assert (config.host, config.port, config.asr_device, config.whisper_model) == (
        "127.0.0.1",
        8080,
        "cpu",
        "base",
    )
    assert config.database_path == tmp_path / "babelcall.sqlite3"
    assert config.translation_dir == tmp_path / "models" / "translation"
    assert "port = 8080" in config.describe()


def test_file_then_environment_override(tmp_path: Path) -> None:
    file = tmp_path / "babelcall.toml"
    file.write_text(
        'port = 9000\nhost = "0.0.0.0"\nice_servers = ["stun:stun.example.org:3478"]\nsilence_ms = 800\n'
    )
    config = load_config(file, environ={"BABELCALL_PORT": "9100", "BABELCALL_LOOPBACK_CANDIDATES": "off"})
    assert config.port == 9100  # environment beats the file
    assert config.host == "0.0.0.0" and config.silence_ms == 800
    assert config.ice_servers == ("stun:stun.example.org:3478",)
    assert config.loopback_candidates is False
    config = load_config(
        environ={"BABELCALL_CONFIG": str(file), "BABELCALL_ICE_SERVERS": "stun:a:1, stun:b:2"}
    )
    assert config.port == 9000 and config.ice_servers == ("stun:a:1", "stun:b:2")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BABELCALL_PORT": "eighty"}, "bad value for port"),
        ({"BABELCALL_COOKIE_SECURE": "maybe"}, "bad value for cookie_secure"),
        ({"BABELCALL_CONFIG": "/nonexistent/babelcall.toml"}, "cannot read config file"),
        ({"BABELCALL_ASR_SETTLE_BEAM_SIZE": "0"}, "asr_settle_beam_size must be a beam width"),
    ],
)
def test_bad_settings_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(environ=environ)


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    file = tmp_path / "babelcall.toml"
    file.write_text("prot = 9000\n")
    with pytest.raises(ConfigError, match="unknown configuration keys: prot"):
        load_config(file, environ={})


def test_describe_lists_every_setting() -> None:
    text = Config().describe()
    for name in Config.__dataclass_fields__:
        assert f"  {name} = " in text


def test_benchmark_recognizer_settings_are_parsed_as_the_server_parses_them() -> None:
    parser = argparse.ArgumentParser()
    overrides = _recognizer_overrides(parser, ["speculative_finals=false", "context_s=20", "beam_size=5"])
    assert overrides == {"speculative_finals": False, "context_s": 20.0, "beam_size": 5}
    with pytest.raises(SystemExit):
        _recognizer_overrides(parser, ["beam_size=five"])
    with pytest.raises(SystemExit):
        _recognizer_overrides(parser, ["no_such_setting=1"])


def test_tls_needs_both_files_and_says_which_cannot_be_used(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load_config(environ={"BABELCALL_TLS_CERT": str(tmp_path / "cert.pem")})
    not_pem = tmp_path / "cert.pem"
    not_pem.write_text("not a certificate\n")
    config = load_config(environ={"BABELCALL_TLS_CERT": str(not_pem), "BABELCALL_TLS_KEY": str(not_pem)})
    assert config.url == "https://127.0.0.1:8080/" and config.secure_cookies
    with pytest.raises(ConfigError, match=f"cannot use tls_cert {not_pem}"):
        config.tls_context()
    plain = load_config(environ={})
    assert plain.tls_context() is None and not plain.secure_cookies and plain.url.startswith("http://")


def test_allowed_origins_from_the_environment_are_checked_and_normalised() -> None:
    config = load_config(
        environ={"BABELCALL_ALLOWED_ORIGINS": "https://BabelCall.example.org, http://10.0.0.5:8080/"}
    )
    assert config.allowed_origins == ("https://babelcall.example.org", "http://10.0.0.5:8080")
    with pytest.raises(ConfigError, match=r"allowed_origins: 'babelcall\.example\.org' is not an origin"):
        load_config(environ={"BABELCALL_ALLOWED_ORIGINS": "babelcall.example.org"})
    assert load_config(environ={"BABELCALL_METRICS_PUBLIC": "yes"}).metrics_public
    assert not Config(host="0.0.0.0").loopback_only and Config(host="127.0.0.2").loopback_only


def test_every_setting_has_one_stage_and_a_file_may_group_them_by_stage(tmp_path: Path) -> None:
    from dataclasses import fields

    from server.config import STAGES

    staged = [name for _, names in STAGES.values() for name in names]
    assert sorted(staged) == sorted(f.name for f in fields(Config))  # each once, none forgotten
    config_file = tmp_path / "babelcall.toml"
    config_file.write_text("port = 9000\n[asr]\nsilence_ms = 300\n[mt]\nmt_beam_size = 1\n")
    config = load_config(config_file, environ={})
    assert (config.port, config.silence_ms, config.mt_beam_size) == (9000, 300, 1)
    described = config.describe()
    assert described.index("[asr]") < described.index("silence_ms = 300") < described.index("[mt]")
    config_file.write_text("[asr]\nmt_beam_size = 1\n")  # a setting under another stage's table
    with pytest.raises(ConfigError, match=r"\[asr\] has no settings mt_beam_size"):
        load_config(config_file, environ={})
