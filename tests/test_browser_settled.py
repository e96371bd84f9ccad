"""Settled captions end to end: a real server's second pass rewrites a line in a real browser, in place.

A headless participant speaks JFK's sentence, which has pauses between its three phrases; with a short
closing silence (`silence_ms` 300) the first pass makes finals of the pieces, and once the speaker
pauses (`asr_settle_pause_s` 3) the second pass hears the sentence whole and settles them. The
reader's page must rewrite the first of the lines it replaces where it stands (the same element) and
drop the others.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from browser_support import create_room, join_the_call, launched, new_page
from harness import PASSWORD, padded_speech, start_server, stop_server

from participant import join_room
from protocol.captions import CaptionKind

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# Remembers every finished line the page shows, by element, so that a settled line can be told apart
# from a line appended at the end.
WATCH_LINES = """() => {
    window.seenLines = window.seenLines || new Map();
    for (const item of document.querySelectorAll("#captions .caption.final")) {
        if (!window.seenLines.has(item.dataset.utterance)) window.seenLines.set(item.dataset.utterance, item);
    }
    const settled = document.querySelector("#captions .caption.settled");
    if (!settled) return null;
    return {
        utterance: settled.dataset.utterance,
        sameElement: window.seenLines.get(settled.dataset.utterance) === settled,
        shown: [...document.querySelectorAll("#captions .caption")].map((item) => item.dataset.utterance),
        text: settled.querySelector(".text").textContent,
    };
}"""


async def test_a_line_is_settled_in_place_in_the_readers_page(
    whisper_model_path: Path, speech_dir: Path, tmp_path: Path
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    # JFK pauses for effect between the phrases, at times for more than the default settle pause
    # (1.5 s): each phrase was then settled alone, unchanged, and nothing was sent. A longer pause here
    # keeps the sentence in one window; the silence after it is as long as the test waits.
    server = start_server(tmp_path / "server", whisper_model_path, silence_ms="300", asr_settle_pause_s="3")
    try:
        speaker = server.member("Dr Ana Ruiz", "ana@example.org")
        server.member("Dr Jean Morel", "jean@example.org")
        room_url = create_room(server, speaker, "consultation", "Settling")
        speech = padded_speech(speech_dir / "en_jfk.flac", tmp_path / "jfk.wav", lead_s=2.0, tail_s=1.0)
        async with launched(chromium) as browser:
            page = await new_page(browser)
            await join_the_call(page, room_url, "jean@example.org", "Settling", speaks="en")
            leave = asyncio.Event()
            talking = asyncio.create_task(
                join_room(
                    room_url,
                    email="ana@example.org",
                    password=PASSWORD,
                    audio=speech,
                    speaks="en",
                    captions="en",
                    linger_s=0.0,
                    leave=leave,
                )
            )
            settled: dict[str, Any] | None = None
            for _ in range(600):  # the page is polled as lines arrive: finals first, then settling
                settled = await page.evaluate(WATCH_LINES)
                if settled:
                    break
                await asyncio.sleep(0.2)
            leave.set()
            report = await talking
    finally:
        stop_server(server)

    # What the server sent: finals, then a settled caption naming the lines it replaces.
    events = report.captions
    settled_events = [e for e in events if e.kind is CaptionKind.SETTLED]
    assert settled_events, [(e.kind.value, e.text) for e in events]
    first = settled_events[0]
    finals = [e.utterance_id for e in events if e.kind is CaptionKind.FINAL]
    assert set(first.replaces) <= set(finals) and first.replaces[0] == first.utterance_id
    last_final = max(
        i for i, e in enumerate(events) if e.kind is CaptionKind.FINAL and e.utterance_id in first.replaces
    )
    assert events.index(first) > last_final  # after every final it replaces
    # The page rewrote that line where it stood and dropped the lines merged into it.
    assert settled is not None, "the reader's page never showed a settled line"
    assert settled["utterance"] == first.utterance_id
    assert settled["sameElement"], settled  # in place: the final's own element, not a new line
    assert not set(first.replaces[1:]) & set(settled["shown"]), settled
    assert "country" in settled["text"].lower() or "americans" in settled["text"].lower(), settled
