"""The host's controls and consultation records, in real Chromium: asking someone to mute, the room
list with the calls that are live and the deletion of an old room, ending the call for everyone, and
a record that keeps words only while everyone present agrees (started from the call, asked on every
page, withdrawn, read and exported from the records page).

Runs inside the private network namespace scripts/test.sh creates; at most two browsers at once.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    CHROMIUM_FLAGS,
    assert_accessible,
    create_room,
    join_the_call,
    keep_screenshot,
    launched,
    new_page,
    sign_in_to_prejoin,
)
from harness import PASSWORD, RunningServer, padded_speech

from participant import join_room

pytestmark = [pytest.mark.slow, pytest.mark.browser]


async def kept_lines(host: Any, at_least: int) -> int:
    """Wait until the host's (only) record holds `at_least` lines; how many it holds."""
    lines = 0
    for _ in range(600):
        status, body = await asyncio.to_thread(host.call, "GET", "/api/records")
        assert status == 200, body
        lines = body["records"][0]["lines"] if body["records"] else 0
        if lines >= at_least:
            return int(lines)
        await asyncio.sleep(0.2)
    raise AssertionError(f"the record holds {lines} lines, not {at_least}")


def accept_dialogs(page: Any) -> None:
    """Answer every confirm() on the page with OK, as the person asked would."""
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))


async def test_the_host_asks_to_mute_deletes_an_old_room_and_ends_the_call_for_everyone(
    server: RunningServer,
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    host = server.member("Dr Hana Chair", "hana.chair@example.org")
    server.member("Dr Omar Muted", "omar.muted@example.org")
    room_url = create_room(server, host, "review", "Case conference")
    create_room(server, host, "consultation", "Old follow-up")
    async with launched(chromium) as browser:
        hana = await new_page(browser)
        accept_dialogs(hana)
        await join_the_call(hana, room_url, "hana.chair@example.org", "Case conference")
        omar = await new_page(browser)
        await join_the_call(omar, room_url, "omar.muted@example.org", "Case conference")

        # Only the host has the host's controls.
        omar_on_hana = hana.locator("#people li").filter(has_text="Dr Omar Muted")
        ask = omar_on_hana.get_by_role("button", name="Ask to mute")
        await ask.wait_for()
        assert await hana.locator("#end-for-all").is_visible()
        await omar.locator("#people li").filter(has_text="Dr Hana Chair").wait_for()
        assert await omar.locator("#people button").count() == 0
        assert await omar.locator("#end-for-all").is_hidden()

        # Asked to mute: his microphone goes quiet at once, he is told who asked, and may unmute.
        assert await omar.get_attribute("#toggle-mic", "aria-pressed") == "false"
        await ask.click()
        await hana.locator("#notice").filter(has_text="Dr Omar Muted was asked to mute").wait_for()
        notice = omar.locator("#notice").filter(has_text="Dr Hana Chair asked you to mute")
        await notice.wait_for()
        assert await notice.locator("bdi").inner_text() == "Dr Hana Chair"  # the name isolated
        assert await omar.get_attribute("#toggle-mic", "aria-pressed") == "true"
        assert (
            await omar.evaluate(
                "() => document.querySelector('#tile-self video').srcObject.getAudioTracks()[0].enabled"
            )
            is False
        )
        await assert_accessible(omar, "the call after a request to mute")
        await omar.click("#toggle-mic")
        assert await omar.get_attribute("#toggle-mic", "aria-pressed") == "false"

        # The host's lobby (another tab) shows which of her rooms has a call on, and deletes an
        # old one after asking.
        lobby = await hana.context.new_page()
        lobby.set_default_timeout(30_000)
        accept_dialogs(lobby)
        await lobby.goto(server.base_url + "/")
        live = lobby.locator("#my-rooms li").filter(has_text="Case conference")
        await live.locator(".live-badge").filter(has_text="In a call now: 2").wait_for()
        old = lobby.locator("#my-rooms li").filter(has_text="Old follow-up")
        assert await old.locator(".live-badge").count() == 0
        await assert_accessible(lobby, "the lobby with the host's rooms")
        await old.get_by_role("button", name="Delete").click()
        await old.wait_for(state="detached")
        await lobby.locator("#notice").filter(has_text="Old follow-up deleted").wait_for()
        status, body = await asyncio.to_thread(host.call, "GET", "/api/rooms")
        assert status == 200 and [room["title"] for room in body["rooms"]] == ["Case conference"], body
        await lobby.close()

        # The host ends the call for everyone: each page says so, in its own words.
        await hana.click("#end-for-all")
        await omar.locator("#notice").filter(has_text="The host ended the call for everyone").wait_for()
        await omar.wait_for_selector("#lobby:not([hidden])")
        await hana.locator("#notice").filter(has_text="You ended the call for everyone").wait_for()
        assert await omar.locator("#tile-self").count() == 0


async def test_a_record_keeps_words_only_while_everyone_agrees_and_is_read_from_the_records_page(
    server: RunningServer, speech_dir: Path, tmp_path: Path
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    host = server.member("Dr Rania Chair", "rania.chair@example.org")
    server.member("Dr Yusuf Guest", "yusuf.guest@example.org")
    server.member("Dr Late Joiner", "late.joiner@example.org")
    room_url = create_room(server, host, "review", "Recorded review")
    # Both pages' microphones play JFK's speech again and again; the guest joins muted.
    microphone = padded_speech(speech_dir / "en_jfk.flac", tmp_path / "jfk.wav", lead_s=1.0, tail_s=3.0)
    async with launched(
        chromium, [*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={microphone}"]
    ) as browser:
        rania = await new_page(browser)
        accept_dialogs(rania)
        await sign_in_to_prejoin(rania, room_url, "rania.chair@example.org")
        await rania.select_option("#speaks", "en")
        await rania.uncheck("#audio-processing")
        await rania.click("#join-button")
        await rania.locator("#call-title").filter(has_text="Recorded review").wait_for()
        yusuf = await new_page(browser)
        await sign_in_to_prejoin(yusuf, room_url, "yusuf.guest@example.org")
        await yusuf.click("#prejoin-mic")
        await yusuf.click("#join-button")
        await yusuf.locator("#call-title").filter(has_text="Recorded review").wait_for()
        await rania.locator("#people li").filter(has_text="Dr Yusuf Guest").wait_for()

        # Only the host may start a record; starting it is her agreement, and he is asked.
        assert await yusuf.locator("#start-record").is_hidden()
        assert await yusuf.locator("#record-indicator").is_hidden()
        start = rania.locator("#start-record")
        assert "counts as your own agreement" in str(await start.get_attribute("title"))
        await start.click()
        rania_state = rania.locator("#record-indicator")
        yusuf_state = yusuf.locator("#record-indicator")
        await rania_state.filter(has_text="waiting for Dr Yusuf Guest to agree").wait_for()
        assert await rania_state.get_attribute("data-state") == "asking"
        question = yusuf.locator("#consent-dialog")
        await question.filter(has_text="The host started a consultation record").wait_for()
        await yusuf_state.filter(has_text="waiting for you to agree").wait_for()
        assert await yusuf.evaluate("() => document.activeElement.id") == "consent-dialog"
        await assert_accessible(yusuf, "the record's question")
        await keep_screenshot(yusuf, "record-consent.png")
        # While he has not answered, what she says is captioned but not kept.
        finals = rania.locator("#caption-lines .caption.final").filter(has_text=re.compile("country", re.I))
        await finals.nth(await finals.count()).wait_for(timeout=120_000)
        assert await kept_lines(host, at_least=0) == 0

        # He agrees, from the keyboard: it records, as both pages say.
        await yusuf.keyboard.press("Tab")
        assert await yusuf.evaluate("() => document.activeElement.id") == "consent-agree"
        await yusuf.keyboard.press("Enter")
        await question.wait_for(state="hidden")
        await yusuf_state.filter(has_text="Recorded: everyone agreed").wait_for()
        await rania_state.filter(has_text="Recorded: everyone agreed").wait_for()
        assert await yusuf.locator("#record-withdraw").is_visible()
        await assert_accessible(rania, "the call while it is recorded")

        # Her speech is kept from now on.
        await kept_lines(host, at_least=1)

        # Someone joins: nothing is kept until they answer, and the pages say whom they wait for.
        leave = asyncio.Event()
        late = asyncio.create_task(
            join_room(
                room_url,
                email="late.joiner@example.org",
                password=PASSWORD,
                audio=None,
                speaks="en",
                captions="en",
                leave=leave,
            )
        )
        try:
            await rania_state.filter(has_text="waiting for Dr Late Joiner to agree").wait_for()
            assert await rania_state.get_attribute("data-state") == "asking"
        finally:
            leave.set()
            await asyncio.wait_for(late, 60)
        await rania_state.filter(has_text="Recorded: everyone agreed").wait_for()

        # He withdraws: the record pauses, and every page says who declined.
        await yusuf.click("#record-withdraw")
        await rania_state.filter(has_text="Record paused: Dr Yusuf Guest declined").wait_for()
        await yusuf_state.filter(has_text="Record paused: you declined").wait_for()
        assert await rania_state.get_attribute("data-state") == "paused"
        assert await yusuf.locator("#record-agree").is_visible()

        # The host stops it; the indicator goes, and the start button comes back.
        await rania.click("#record-stop")
        await rania_state.wait_for(state="hidden")
        await yusuf_state.wait_for(state="hidden")
        await start.wait_for()

        # The records page: the host reads the record and exports it translated; the guest may
        # read it but not delete it.
        await rania.click("#leave")
        await rania.wait_for_selector("#lobby:not([hidden])")
        listed = rania.locator("#records-list li").filter(has_text="Recorded review")
        await listed.wait_for()
        await assert_accessible(rania, "the lobby with the records")
        await listed.get_by_role("link", name="Read").click()
        await rania.wait_for_selector("#record:not([hidden])")
        assert re.search(r"/\?record=\w+$", rania.url), rania.url
        lines = rania.locator("#record-lines li")
        await lines.first.wait_for()
        kept = await rania.locator("#record-lines li .text").all_inner_texts()
        assert kept and all(text.strip() for text in kept), kept
        speakers = await rania.locator("#record-lines li .speaker").all_inner_texts()
        assert set(speakers) == {"Dr Rania Chair"}, speakers  # the muted guest said nothing
        await assert_accessible(rania, "a record")
        await rania.select_option("#export-format", "html")
        assert await rania.locator("#export-record").is_disabled()  # the bilingual one needs a language
        await rania.select_option("#export-language", "fr")
        await rania.select_option("#export-format", "txt")
        async with rania.expect_download() as download_info:
            await rania.click("#export-record")
        download = await download_info.value
        assert re.fullmatch(r"record-\w{8}-fr\.txt", download.suggested_filename), download.suggested_filename
        exported = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
        assert all(text in exported for text in kept), (kept, exported)
        assert "not translated: no model for en→fr" in exported, exported  # no model on this server

        await yusuf.click("#leave")
        await yusuf.wait_for_selector("#lobby:not([hidden])")
        on_yusuf = yusuf.locator("#records-list li").filter(has_text="Recorded review")
        await on_yusuf.wait_for()
        assert await on_yusuf.get_by_role("button").count() == 0

        await rania.click("#record-delete")
        await rania.wait_for_selector("#lobby:not([hidden])")
        await rania.locator("#notice").filter(has_text="Record deleted").wait_for()
        assert await rania.locator("#records-list li").count() == 0  # gone at once, not after a refetch
        await rania.locator("#records-card").wait_for(state="hidden")
    status, body = await asyncio.to_thread(host.call, "GET", "/api/records")
    assert status == 200 and body["records"] == [], body
