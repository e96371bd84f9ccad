"""A real call in a real browser: headless Chromium speaks JFK's words through its fake microphone,
a headless participant speaks French, and both read each other's captions.

Runs inside the private network namespace scripts/test.sh creates, so no traffic leaves loopback.
The screenshot it takes is the README's docs/images/call.png (set BABELCALL_SCREENSHOTS=docs/images).
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

import jiwer
import psutil
import pytest
from browser_support import (
    assert_accessible,
    create_room,
    join_the_call,
    keep_screenshot,
    launched,
    new_page,
    page_with_microphone,
    sign_in,
    sign_in_to_prejoin,
)
from harness import (
    PASSWORD,
    RunningServer,
    normalised_words,
    padded_speech,
    reference_text,
    restart_server,
    start_server,
    stop_server,
)
from prometheus_client.parser import text_string_to_metric_families

from participant import join_room
from protocol import TranslationPath
from protocol.captions import transcript

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def read_metrics(server: RunningServer) -> str:
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as response:
        return str(response.read().decode())


async def media_participants(server: RunningServer, expected: int) -> None:
    """Wait until the server's media workers carry `expected` participants (from `/metrics`)."""
    count = None
    for _ in range(150):
        text = await asyncio.to_thread(read_metrics, server)
        count = next(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "babelcall_media" and sample.labels == {"figure": "participants"}
        )
        if count == expected:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"media workers carry {count} participants, not {expected}")


async def test_browser_call_with_captions_both_ways(
    server: RunningServer, speech_dir: Path, tmp_path: Path
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    amal = server.member("Dr Amal Haddad", "amal@example.org")
    server.member("Dr Jean Morel", "jean@example.org")
    room_url = create_room(server, amal, "consultation", "Cardiology consult")

    # Chromium loops its fake microphone unless told "%noloop"; lead silence covers the join.
    microphone = padded_speech(speech_dir / "en_jfk.flac", tmp_path / "jfk.wav", lead_s=4.0, tail_s=6.0)
    french = padded_speech(speech_dir / "fr_uberi_french.aiff", tmp_path / "fr.wav", lead_s=8.0, tail_s=1.0)

    async with page_with_microphone(
        chromium, tmp_path / "profile", microphone, loop=False, viewport={"width": 1280, "height": 900}
    ) as page:
        await sign_in_to_prejoin(page, room_url, "amal@example.org")
        await page.select_option("#speaks", "en")
        await page.select_option("#captions-language", "en")
        await page.uncheck("#audio-processing")  # raw audio, as from a headset
        await page.click("#join-button")
        await page.wait_for_selector("#tile-self")

        # Jean reads French and speaks French; his speech reaches Amal in English via Whisper. He
        # sends a camera (a test pattern) and receives Amal's, as a browser would.
        # He stays until the page has Amal's last words (the same final reaches him at once).
        amal_finished = asyncio.Event()
        jean = asyncio.create_task(
            join_room(
                room_url,
                email="jean@example.org",
                password=PASSWORD,
                audio=french,
                speaks="fr",
                captions="fr",
                leave=amal_finished,
                linger_s=3.0,
                video=True,
                receive_media=True,
            )
        )
        # The page shows Jean's camera, relayed by the server's media worker (one shared VP8
        # encoding) and decoded by Chromium, and final captions of both speakers.
        jean_video = page.locator("#videos .tile:not(#tile-self) video")
        await jean_video.wait_for(timeout=30_000)
        width = 0
        for _ in range(100):
            width = await jean_video.evaluate("video => video.videoWidth")
            if width:
                break
            await asyncio.sleep(0.2)
        assert width == 640, "Jean's camera never played in the browser"
        # Locators, not wait_for_function: the page's Content-Security-Policy forbids string eval.
        await page.locator("#captions .caption.final[data-path=whisper]").first.wait_for(timeout=60_000)
        await (
            page.locator("#captions .caption.final[data-path=original]")
            .filter(has_text=re.compile(r"for your country", re.IGNORECASE))  # the last words
            .first.wait_for(timeout=60_000)
        )
        amal_finished.set()
        await keep_screenshot(page, "call.png")
        await assert_accessible(page, "the call on a desktop")
        # The reader can keep their own copy of the final captions (the server stores none).
        async with page.expect_download() as download_info:
            await page.click("#download-captions")
        download_path = await (await download_info.value).path()
        saved = await asyncio.to_thread(Path(download_path).read_text, encoding="utf-8")
        assert "Cardiology consult" in saved and "Dr Amal Haddad (en): " in saved
        assert re.search(r"for your country", saved, re.IGNORECASE), saved
        assert "Dr Jean Morel (fr→en, Whisper speech translation): " in saved, saved
        # Readers who need bigger captions get them.
        caption_text = page.locator("#captions .caption.final .text").first
        font_size = "node => parseFloat(getComputedStyle(node).fontSize)"
        normal_px = await caption_text.evaluate(font_size)
        await page.select_option("#caption-size", "larger")
        assert await caption_text.evaluate(font_size) >= 1.5 * normal_px
        page_finals = await page.eval_on_selector_all(
            "#captions .caption.final[data-path=original] .text", "nodes => nodes.map(n => n.textContent)"
        )
        whisper_finals = await page.eval_on_selector_all(
            "#captions .caption.final[data-path=whisper] .text", "nodes => nodes.map(n => n.textContent)"
        )
        report = await asyncio.wait_for(jean, 90)

    reference = normalised_words(reference_text(speech_dir, "en_jfk.flac"))
    # What Amal said, as Jean received it: the original English, marked (no en→fr model here).
    # What Jean holds in the end: finals, and settled captions in place of those they replace.
    from_amal = transcript(e for e in report.captions if e.speaker_name == "Dr Amal Haddad")
    assert from_amal, f"Jean received no final caption from the browser; server log:\n{server.log()}"
    assert all(e.path is TranslationPath.UNTRANSLATED and e.note for e in from_amal)
    heard = normalised_words(" ".join(e.text for e in from_amal))
    # Opus, a browser's audio pipeline and streaming endpoints cost a little against offline decoding
    # (0% on this clip): a quarter of the words is still a clear failure signal, not noise.
    assert jiwer.wer(reference, heard) < 0.25, heard
    assert jiwer.wer(reference, normalised_words(" ".join(page_finals))) < 0.25, page_finals
    assert any(text.strip() for text in whisper_finals)
    # And the other way: Amal's microphone and Chromium's fake camera reached Jean through the server.
    assert report.audio_received_s > 10.0 and report.video_frames_received > 100, report


async def test_the_page_rejoins_by_itself_when_the_server_restarts(
    whisper_model_path: Path, tmp_path: Path
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = start_server(data_dir, whisper_model_path)
    try:
        amal = server.member("Dr Amal Haddad", "amal@example.org")
        server.member("Dr Jean Morel", "jean@example.org")
        room_url = create_room(server, amal, "consultation", "Night shift")
        # Chromium's own fake microphone (a beep) and camera: only the connection is under test.
        async with launched(chromium) as browser:
            page = await new_page(browser)
            await join_the_call(page, room_url, "amal@example.org", "Night shift")
            title = page.locator("#call-title")

            # Captions switched to French mid-call, then a restart (or a network drop): the page
            # keeps the call on screen and joins again, reading French.
            await page.select_option("#call-captions-language", "fr")
            await asyncio.to_thread(restart_server, server)
            await page.locator("#connection-banner").filter(has_text="reconnecting").wait_for()
            await title.filter(has_text="Night shift").wait_for(timeout=60_000)
            await page.locator("#connection-banner").wait_for(state="hidden", timeout=60_000)
            assert await page.locator("#tile-self").count() == 1
            assert "(en→fr)" in server.log(), server.log()

            # The same member joining from a second tab takes the seat; the first tab gives way
            # instead of reconnecting and taking it back.
            second = await page.context.new_page()  # the same member's second tab
            second.set_default_timeout(30_000)
            await second.goto(room_url)
            await second.click("#join-button")
            await second.locator("#call-title").filter(has_text="Night shift").wait_for()
            await page.locator("#notice").filter(has_text="another connection").wait_for()
            await page.locator("#tile-self").wait_for(state="detached")
            await page.wait_for_selector("#lobby:not([hidden])")  # free to take the seat back

            # The room's media process dies: the tab joins again and reaches its replacement.
            await media_participants(server, 1)  # once the second tab has published
            workers = [
                child for child in psutil.Process(server.process.pid).children() if "media" in child.cmdline()
            ]
            assert workers, "no media worker found"
            for worker in workers:
                worker.kill()
            await second.locator("#connection-banner").filter(has_text="reconnecting").wait_for()
            await second.locator("#connection-banner").wait_for(state="hidden", timeout=60_000)
            await second.locator("#call-title").filter(has_text="Night shift").wait_for()

            # The seat's microphone and camera reach a participant who joins now.
            report = await join_room(
                room_url,
                email="jean@example.org",
                password=PASSWORD,
                audio=None,
                speaks="fr",
                captions="fr",
                linger_s=6.0,
                receive_media=True,
            )
            assert await page.locator("#notice").filter(has_text="another connection").count() == 1
    finally:
        stop_server(server)
    assert report.audio_received_s > 3.0 and report.video_frames_received > 30, report
    # Since the restart: the first tab, the second, the second again after the media loss, then Jean.
    assert server.log().count("joined room") == 4, server.log()


async def test_an_administrator_ends_a_membership_and_the_members_call_ends(server: RunningServer) -> None:
    from conftest import require_browser

    chromium = require_browser()
    leaving = server.member("Dr Lee Leaving", "lee@example.org")
    room_url = create_room(server, leaving, "review", "Tumour board")
    async with launched(chromium) as browser:
        member_page = await new_page(browser)
        await join_the_call(member_page, room_url, "lee@example.org", "Tumour board")

        admin_page = await new_page(browser)
        await admin_page.goto(server.base_url + "/admin")
        await sign_in(admin_page, "admin@example.org")
        row = admin_page.locator("#members tr").filter(has_text="lee@example.org")
        await row.wait_for()
        await assert_accessible(admin_page, "the administrator's page")
        admin_page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await row.get_by_role("button", name="End membership").click()
        await row.filter(has_text="Rejected").wait_for()

        # The member's call ends at once and the page asks for a sign-in, saying why.
        await member_page.wait_for_selector("#auth:not([hidden])")
        await member_page.locator("#notice").filter(has_text="ended your membership").wait_for()
        assert await member_page.locator("#tile-self").count() == 0
        # Reinstated from the same table, the member can sign in again.
        await row.get_by_role("button", name="Approve").click()
        await row.filter(has_text="Member").wait_for()
        await sign_in(member_page, "lee@example.org")
        await member_page.wait_for_selector("#prejoin:not([hidden])")
    status, _ = leaving.call("GET", "/api/me")
    assert status == 401  # the session that was signed in before the decision ended with it


async def test_the_host_sees_who_is_in_the_call_and_removes_someone(server: RunningServer) -> None:
    from conftest import require_browser

    chromium = require_browser()
    host = server.member("Dr Hana Host", "hana@example.org")
    server.member("Dr Omar Guest", "omar@example.org")
    room_url = create_room(server, host, "review", "Case review")
    async with launched(chromium) as browser:
        pages = {}
        for email in ("hana@example.org", "omar@example.org"):
            page = await new_page(browser)
            speaks = "ar" if email.startswith("omar") else "en"
            await join_the_call(page, room_url, email, "Case review", speaks=speaks)
            pages[email] = page
        hana, omar = pages["hana@example.org"], pages["omar@example.org"]

        # Both see both, with their languages; only the host may remove anyone.
        omar_on_hana = hana.locator("#people li").filter(has_text="Dr Omar Guest")
        await omar_on_hana.filter(has_text="speaks Arabic, reads English").wait_for()
        await omar.locator("#people li").filter(has_text="Dr Hana Host").wait_for()
        assert await omar.locator("#people button").count() == 0
        # The glossary: the host edits it, everyone else reads it.
        await hana.click("#toggle-glossary")
        await omar.click("#toggle-glossary")
        assert not await hana.locator("#glossary-terms").evaluate("node => node.readOnly")
        assert await hana.locator("#save-glossary").is_visible()
        assert await omar.locator("#glossary-terms").evaluate("node => node.readOnly")
        assert not await omar.locator("#save-glossary").is_visible()
        await omar.locator("#glossary-hint").filter(has_text="Only the room's host").wait_for()
        await assert_accessible(omar, "the call, with the glossary open")

        hana.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await omar_on_hana.get_by_role("button", name="Remove").click()
        await omar_on_hana.wait_for(state="detached")
        await omar.locator("#notice").filter(has_text="host removed you").wait_for()
        await omar.wait_for_selector("#lobby:not([hidden])")
        # Kept out while the call lasts, even from a freshly loaded page.
        await omar.goto(room_url)
        await omar.wait_for_selector("#prejoin:not([hidden])")
        assert await omar.locator("#notice").filter(has_text="host removed you").count() == 0
        await omar.click("#join-button")
        await omar.locator("#notice").filter(has_text="host removed you").wait_for()
        await omar.wait_for_selector("#lobby:not([hidden])")
        assert await hana.locator("#people li").count() == 1
