"""The aiohttp application: pages, REST API, WebSocket signalling, and the lifetime of the engines."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from asr import RecognizerConfig, SpeechRecognizer
from media import MediaHub, MediaSettings, WorkerSettings
from models import resolve_whisper_model
from mt import TranslationEngine
from server import api, errors, records_api, security
from server.config import Config
from server.context import AppContext
from server.passwords import PasswordWork
from server.records import load_record_cipher
from server.signalling import room_socket
from server.store import Store

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# How long the setup link printed at start-up stays usable; a restart prints a new one.
SETUP_LINK_VALID_S = 3600


def load_recognizer(config: Config) -> SpeechRecognizer:
    """Blocking: loads and warms the Whisper model. Call it off the event loop."""
    model_path = resolve_whisper_model(config.whisper_model, config.data_dir / "models")
    recognizer = SpeechRecognizer(
        model_path,
        RecognizerConfig(
            device=config.asr_device,
            compute_type=config.asr_compute_type,
            cpu_threads=config.cpu_threads,
            silence_ms=config.silence_ms,
            max_utterance_s=config.max_utterance_s,
            partial_interval_s=config.partial_interval_s,
            max_batch=config.asr_max_batch,
            prep_threads=config.asr_prep_threads,
            context_s=config.asr_context_s,
            short_final_windows=config.asr_short_final_windows,
            speculative_finals=config.asr_speculative_finals,
            second_pass=config.asr_second_pass,
            settle_pause_s=config.asr_settle_pause_s,
            settle_window_s=config.asr_settle_window_s,
            settle_wait_s=config.asr_settle_wait_s,
            settle_left_context_s=config.asr_settle_left_context_s,
            settle_beam_size=config.asr_settle_beam_size,
        ),
    )
    recognizer.warm_up()
    return recognizer


def load_engine(config: Config) -> TranslationEngine:
    """Blocking: loads every translation model in the configured directory."""
    engine = TranslationEngine.from_directory(
        config.translation_dir,
        device=config.mt_device,
        compute_type=config.mt_compute_type,
        cpu_threads=config.cpu_threads,
        beam_size=config.mt_beam_size,
        prefer_whisper_english=config.mt_prefer_whisper_english,
    )
    if engine.model_names:
        log.info("translation models: %s", ", ".join(engine.model_names))
    else:
        log.warning(
            "no translation model in %s: captions in other languages show the original text, marked; "
            "English captions come from Whisper's speech translation",
            config.translation_dir,
        )
    return engine


def media_settings(config: Config) -> MediaSettings:
    return MediaSettings(
        workers=config.media_worker_count,
        worker=WorkerSettings(
            ice_servers=config.ice_servers,
            loopback_candidates=config.loopback_candidates,
            log_level=logging.getLogger().getEffectiveLevel(),
        ),
    )


async def _page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _setup_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "setup.html", headers={"Cache-Control": "no-store"})


async def _favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "favicon.svg", headers={"Content-Type": "image/svg+xml"})


def create_app(
    config: Config,
    *,
    recognizer: SpeechRecognizer | None = None,
    engine: TranslationEngine | None = None,
    passwords: PasswordWork | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """Build the application. Engines not given are loaded at start-up from the configuration.
    `clock`: what consultation records are stamped and expired by (tests move it forward)."""
    app = web.Application(
        middlewares=[errors.errors, security.protection(config), api.identify_member],
        client_max_size=config.max_message_bytes,
    )
    app.on_response_prepare.append(security.header_setter(config))
    app.add_routes(api.routes)
    app.add_routes(records_api.routes)
    app.router.add_get("/ws/rooms/{room_id}", room_socket)
    app.router.add_get("/setup", _setup_page)
    app.router.add_get("/", _page)
    app.router.add_get("/r/{room_id}", _page)
    app.router.add_get("/admin", _page)
    app.router.add_get("/favicon.ico", _favicon)
    app.router.add_static("/static/", WEB_DIR, follow_symlinks=False)

    async def lifetime(app: web.Application) -> object:
        store = Store(config.database_path)
        await store.open()
        try:
            record_cipher = await load_record_cipher(config.record_key_path, store)
        except BaseException:
            await store.close()
            raise
        loaded_recognizer = recognizer or await asyncio.to_thread(load_recognizer, config)
        loaded_engine = engine or await asyncio.to_thread(load_engine, config)
        hub = MediaHub(media_settings(config))
        await hub.start()
        password_work = passwords or PasswordWork()
        await password_work.start()
        context = AppContext(
            config=config,
            store=store,
            hub=hub,
            recognizer=loaded_recognizer,
            engine=loaded_engine,
            passwords=password_work,
            record_cipher=record_cipher,
            clock=clock,
        )
        if not await store.has_admin():
            context.setup_token = await store.new_setup_token(SETUP_LINK_VALID_S)
        await context.records.open()
        app[AppContext.KEY] = context
        loop_probe = asyncio.create_task(context.metrics.probe_event_loop(), name="event-loop-probe")
        retention = asyncio.create_task(context.records.keep_purging(), name="record-retention")
        yield
        loop_probe.cancel()
        retention.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retention
        await context.chat.aclose()
        await context.hub.close()
        await loaded_recognizer.aclose()
        await loaded_engine.aclose()
        await password_work.close()
        await context.records.close()
        await store.close()

    async def tell_everyone_we_stop(app: web.Application) -> None:
        # Before aiohttp waits for the open WebSockets to end: each is told, then closed, here.
        await app[AppContext.KEY].calls.shutdown()

    app.cleanup_ctx.append(lifetime)
    app.on_shutdown.append(tell_everyone_we_stop)
    return app
