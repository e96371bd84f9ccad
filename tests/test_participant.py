"""The headless participant against a running server: the public, scriptable way to use BabelCall."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jiwer
import numpy as np
import pytest
from harness import PASSWORD, RunningServer, free_port, normalised_words, reference_text, write_wav

from participant import join_room
from protocol import CaptionEvent, TranslationPath
from protocol.captions import NoteCode, transcript

pytestmark = pytest.mark.slow


async def test_speaker_and_listener_receive_captions_as_json_lines(
    server: RunningServer, speech_dir: Path, tmp_path: Path
) -> None:
    speaker = server.member("Dr Ana Ruiz", "ana@example.org")
    server.member("Dr Listener", "listener@example.org")
    status, body = speaker.call("POST", "/api/rooms", {"kind": "review", "title": "Case review"})
    assert status == 201
    room_url = server.base_url + body["link"]

    # The listener speaks nothing (silence) and reads French: no model here, so it must get the
    # original English, marked as untranslated, and never invented text.
    silence = write_wav(tmp_path / "silence.wav", np.zeros(48_000 * 26, dtype=np.int16), 48_000)
    listener = asyncio.create_task(
        join_room(
            room_url,
            email="listener@example.org",
            password=PASSWORD,
            audio=silence,
            speaks="fr",
            captions="fr",
            linger_s=1.0,
            receive_media=True,  # as a browser: it hears the speaker too
        )
    )
    await asyncio.sleep(2.0)

    started = time.time()
    speaker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "join",
        room_url,
        "--email",
        "ana@example.org",
        "--audio",
        str(speech_dir / "en_jfk.flac"),
        "--speaks",
        "en",
        "--captions",
        "en",
        "--linger",
        "6",
        "--receive-media",
        "--video",
        env={**os.environ, "BABELCALL_PASSWORD": PASSWORD},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(speaker.communicate(), 90)
    assert speaker.returncode == 0, stderr.decode()
    report = await asyncio.wait_for(listener, 90)

    # Every stdout line is one caption event, in the documented format.
    lines = stdout.decode().splitlines()
    assert lines, f"no captions printed; stderr:\n{stderr.decode()}\nserver log:\n{server.log()}"
    events = [CaptionEvent.from_json(line) for line in lines]
    for line, event in zip(lines, events, strict=True):
        raw = json.loads(line)
        for key in (
            "speaker_name",
            "utterance_id",
            "kind",
            "source_language",
            "caption_language",
            "text",
            "sent_at",
        ):
            assert key in raw
        assert event.speaker_name == "Dr Ana Ruiz"
        assert event.source_language == "en" and event.caption_language == "en"
        assert event.path is TranslationPath.ORIGINAL
        assert started < event.sent_at < time.time()

    finals = [e for e in events if e.final]
    partials = [e for e in events if not e.final]
    assert finals and partials, "expected partial captions while speaking and finals at the pauses"
    # Partials of an utterance come before its final.
    first_final_at = min(e.sent_at for e in finals)
    assert min(e.sent_at for e in partials) < first_final_at
    # What the speaker reads in the end: finals, and settled captions in place of those they replace.
    said = " ".join(e.text for e in transcript(events))
    # Offline Whisper base gets this clip word-perfect; allow a couple of words of streaming drift.
    error_rate = jiwer.wer(
        normalised_words(reference_text(speech_dir, "en_jfk.flac")), normalised_words(said)
    )
    assert error_rate < 0.15, said

    listener_finals = [e for e in report.captions if e.final]
    assert listener_finals, "the listener received no final captions"
    for event in listener_finals:
        assert event.path is TranslationPath.UNTRANSLATED
        assert event.caption_language == "en"
        assert event.note == "not translated: no model for en→fr"
        assert event.note_code is NoteCode.NO_MODEL and event.target_language == "fr"
    assert normalised_words(" ".join(e.text for e in transcript(report.captions))) == normalised_words(said)
    # The speaker's 11 s of speech and its camera (15 frames a second), relayed by the media worker.
    assert report.audio_received_s > 10.0, report.audio_received_s
    assert report.video_frames_received > 100, report.video_frames_received

    log = server.log()
    assert "no translation model for en→fr" in log
    # Medical speech never reaches the log.
    assert "fellow Americans" not in log and "country" not in log


def test_join_reports_bad_credentials_and_bad_links(server: RunningServer, speech_dir: Path) -> None:
    command = [sys.executable, "-m", "server", "join", "--audio", str(speech_dir / "en_jfk.flac")]
    command += ["--speaks", "en", "--captions", "en", "--email", "nobody@example.org"]
    env = {**os.environ, "BABELCALL_PASSWORD": "wrong password"}
    result = subprocess.run([*command, server.base_url + "/r/abc"], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "sign-in failed: wrong email or password" in result.stderr
    assert result.stdout == ""
    result = subprocess.run([*command, server.base_url + "/rooms"], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "not a room link" in result.stderr
    nobody_listens = f"http://127.0.0.1:{free_port()}/r/abc"
    result = subprocess.run([*command, nobody_listens], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "cannot reach http://127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_restart_tells_every_page_and_delivers_what_was_already_said_first(
    whisper_model_path: Path, speech_dir: Path, tmp_path: Path
) -> None:
    """SIGTERM while a doctor is mid-sentence: the sentence is captioned, every page is told the
    server is restarting (close code 1012, after which pages join again), and the server exits
    instead of waiting half a minute for sockets to time out."""
    import aiohttp
    from harness import start_server

    server = start_server(tmp_path, whisper_model_path)
    speaker = server.member("Dr Ana Ruiz", "ana@example.org")
    server.member("Dr Listener", "listener@example.org")
    status, body = speaker.call("POST", "/api/rooms", {"kind": "review", "title": "Case review"})
    assert status == 201
    room_url = server.base_url + body["link"]
    heard: list[dict[str, object]] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(
            f"{server.base_url}/api/login", json={"email": "listener@example.org", "password": PASSWORD}
        ) as response:
            assert response.status == 200
        socket = await http.ws_connect(room_url.replace("http", "ws", 1).replace("/r/", "/ws/rooms/"))
        await socket.send_json({"type": "join", "speaks": "en", "captions": "en"})
        talking = asyncio.create_task(
            join_room(
                room_url,
                email="ana@example.org",
                password=PASSWORD,
                audio=speech_dir / "en_jfk.flac",
                speaks="en",
                captions="en",
                linger_s=30.0,
            )
        )
        # Mid-sentence: the first words are on screen, the sentence is not over.
        async for message in socket:
            heard.append(json.loads(message.data))
            if heard[-1]["type"] == "caption":
                break
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        async for message in socket:
            heard.append(json.loads(message.data))
        closed = socket.close_code
        exit_code = await asyncio.to_thread(server.process.wait, 60)
        stopped_after = time.monotonic() - signalled
        talking.cancel()
        await asyncio.gather(talking, return_exceptions=True)

    kinds = [(m["type"], m.get("kind") or m.get("code")) for m in heard]
    assert ("caption", "final") in kinds, kinds  # what was said before the restart is captioned...
    assert kinds[-1] == ("error", "server_restarting"), kinds  # ...before the page is told
    assert kinds.index(("caption", "final")) < len(kinds) - 1
    assert closed == 1012
    assert exit_code == 0
    print(f"server stopped {stopped_after:.1f} s after SIGTERM")  # reported; the budget is 5 s
