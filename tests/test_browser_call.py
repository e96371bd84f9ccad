"""The call page as doctors use it, in real Chromium: the pre-join check, muting, connection states
that tell the truth, the phone layout, the Arabic interface, and axe-core on every view.

Runs inside the private network namespace scripts/test.sh creates; at most two browsers at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    BASE_FLAGS,
    CHROMIUM_FLAGS,
    assert_accessible,
    create_room,
    keep_screenshot,
    launched,
    new_page,
    page_with_microphone,
    sign_in,
    sign_in_to_prejoin,
    wait_until,
)
from harness import (
    PASSWORD,
    RunningServer,
    padded_speech,
    start_server,
    start_stopped_server,
    stop_server,
)

from participant import join_room

pytestmark = [pytest.mark.slow, pytest.mark.browser]
FRENCH_CATALOGUE = Path(__file__).resolve().parents[1] / "web" / "i18n" / "fr.json"

NO_OVERFLOW = "() => document.documentElement.scrollWidth <= window.innerWidth"


async def room_participants(server: RunningServer, member: Any, room_url: str) -> list[dict[str, Any]]:
    status, body = await asyncio.to_thread(member.call, "GET", "/api/rooms/" + room_url.rsplit("/", 1)[1])
    assert status == 200, body
    return list(body["room"]["participants"])


async def test_prejoin_preview_and_an_audio_only_join_when_the_camera_is_denied(
    server: RunningServer,
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    host = server.member("Dr Rana Preview", "rana@example.org")
    server.member("Dr Tomas Nocam", "tomas@example.org")
    room_url = create_room(server, host, "consultation", "Pre-join check")
    # No automatic "allow": each context is granted what it is granted, and other requests fail.
    # Two fake cameras and microphones, to switch between.
    two_of_each = [
        "--use-fake-device-for-media-stream=device-count=2"
        if flag == "--use-fake-device-for-media-stream"
        else flag
        for flag in BASE_FLAGS
    ]
    async with launched(chromium, two_of_each) as browser:
        rana = await new_page(browser, permissions=["microphone", "camera"])
        await rana.goto(server.base_url + "/")
        await rana.wait_for_selector("#auth:not([hidden])")
        await assert_accessible(rana, "the sign-in page")
        await sign_in(rana, "rana@example.org")
        await rana.wait_for_selector("#lobby:not([hidden])")
        await assert_accessible(rana, "the lobby")
        await rana.goto(room_url)
        await rana.wait_for_selector("#prejoin:not([hidden])")
        await rana.locator("#prejoin-room").filter(has_text="Pre-join check").wait_for()
        # The preview plays the camera, and the meter moves with the (fake) microphone's beeps.
        await wait_until(rana, "() => document.querySelector('#preview-video').videoWidth > 0")
        await wait_until(rana, "() => document.querySelector('#mic-level').value > 0.01")
        assert await rana.locator("#device-problems li").count() == 0
        assert await rana.locator("#camera-choice option").count() >= 1
        await assert_accessible(rana, "the pre-join check")
        await rana.click("#join-button")
        await rana.locator("#call-title").filter(has_text="Pre-join check").wait_for()

        # Only the microphone is allowed: the camera's refusal is explained, and joining goes on.
        tomas = await new_page(browser, permissions=["microphone"])
        await sign_in_to_prejoin(tomas, room_url, "tomas@example.org")
        problem = tomas.locator("#device-problems li[data-kind=video][data-problem=denied]")
        await problem.filter(has_text="blocks your camera").wait_for()
        assert "address bar" in await problem.inner_text()
        assert "join with your microphone" in await problem.inner_text()
        assert await tomas.locator("#device-problems li[data-kind=audio]").count() == 0
        await wait_until(tomas, "() => document.querySelector('#mic-level').value > 0.01")
        await assert_accessible(tomas, "the pre-join check with a blocked camera")
        await tomas.click("#join-button")
        await tomas.locator("#call-title").filter(has_text="Pre-join check").wait_for()
        await tomas.wait_for_selector("#tile-self.audio-only")
        assert await tomas.locator("#toggle-camera").is_disabled()

        # The host hears him: his microphone is published, without video.
        tomas_id = None
        for _ in range(150):
            participants = await room_participants(server, host, room_url)
            tomas_id = next((p["id"] for p in participants if p["publishing"] == ["audio"]), None)
            if tomas_id:
                break
            await asyncio.sleep(0.2)
        assert tomas_id, participants
        await rana.wait_for_selector(f"#tile-{tomas_id}.audio-only")
        await (
            rana.locator("#people li")
            .filter(has_text="Dr Tomas Nocam")
            .filter(has_text="connected")
            .wait_for()
        )

        # Her camera reaches him. She turns it off and on again with the keyboard shortcut, then
        # switches cameras: each new track replaces the old one on the same sender (the old one is
        # stopped), without renegotiating. Chromium's second fake camera sends nothing the other
        # side can play, so she switches to it and back: her video arriving again is the proof.
        rana_id = next(p["id"] for p in participants if p["publishing"] == ["audio", "video"])
        rana_video = f"document.querySelector('#tile-{rana_id} video')"
        frames = f"() => {rana_video}.getVideoPlaybackQuality().totalVideoFrames"

        async def video_keeps_arriving() -> None:
            before = await tomas.evaluate(frames)
            await wait_until(tomas, f"() => ({frames})() > {before} + 10")

        await video_keeps_arriving()
        # Chromium's fake microphone beeps: each beep highlights her tile on his page.
        await tomas.wait_for_selector(f"#tile-{rana_id}.speaking")
        await rana.locator("#captions").click()  # focus outside any form field
        await rana.keyboard.press("v")
        await rana.wait_for_selector("#tile-self.camera-off")
        assert await rana.get_attribute("#toggle-camera", "aria-pressed") == "true"
        await rana.keyboard.press("v")
        await rana.wait_for_selector("#tile-self:not(.camera-off)")
        await wait_until(rana, "() => document.querySelector('#tile-self video').videoWidth > 0")
        await video_keeps_arriving()
        camera_label = "() => document.querySelector('#tile-self video').srcObject.getVideoTracks()[0].label"
        first_camera = await rana.evaluate(camera_label)
        await rana.click("#toggle-devices")
        other = await rana.eval_on_selector_all(
            "#call-camera-choice option",
            f"options => options.find((o) => o.text !== '{first_camera}').value",
        )
        first = await rana.eval_on_selector_all(
            "#call-camera-choice option",
            f"options => options.find((o) => o.text === '{first_camera}').value",
        )
        await rana.select_option("#call-camera-choice", other)
        await wait_until(rana, f"() => ({camera_label})() !== '{first_camera}'")
        await rana.select_option("#call-camera-choice", first)
        await wait_until(rana, f"() => ({camera_label})() === '{first_camera}'")
        await video_keeps_arriving()
        await assert_accessible(rana, "the call with the devices panel open")


async def test_muting_silences_the_speakers_captions(
    server: RunningServer, speech_dir: Path, tmp_path: Path
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    server.member("Dr Amal Mute", "amal.mute@example.org")
    listener = server.member("Dr Jean Listen", "jean.listen@example.org")
    room_url = create_room(server, listener, "consultation", "Muted consult")
    # The clip loops: JFK speaks again and again, with a pause between.
    microphone = padded_speech(speech_dir / "en_jfk.flac", tmp_path / "jfk.wav", lead_s=1.0, tail_s=3.0)
    heard: list[dict[str, Any]] = []
    final_from_amal = asyncio.Event()  # set by her passage's last words

    def on_caption(line: str) -> None:
        event = json.loads(line)
        if event["speaker_name"] == "Dr Amal Mute":
            heard.append(event)
            if event["kind"] != "partial" and re.search(r"country", event["text"], re.IGNORECASE):
                final_from_amal.set()

    async with page_with_microphone(chromium, tmp_path / "profile", microphone) as page:
        leave = asyncio.Event()
        jean = asyncio.create_task(
            join_room(
                room_url,
                email="jean.listen@example.org",
                password=PASSWORD,
                audio=None,
                speaks="en",
                captions="en",
                on_caption=on_caption,
                leave=leave,
            )
        )
        try:
            await sign_in_to_prejoin(page, room_url, "amal.mute@example.org")
            await page.select_option("#speaks", "en")
            await page.uncheck("#audio-processing")
            await page.click("#prejoin-mic")  # join muted
            assert await page.get_attribute("#prejoin-mic", "aria-pressed") == "true"
            await page.click("#join-button")
            await page.locator("#call-title").filter(has_text="Muted consult").wait_for()
            await page.locator("#people li").filter(has_text="Dr Jean Listen").wait_for()
            await page.locator("#people li .connection.connected").first.wait_for()
            # JFK speaks a whole passage into the muted microphone: the page notices the speech...
            hint = page.locator("#muted-speaking")
            await hint.wait_for(state="visible", timeout=60_000)
            await hint.wait_for(state="hidden", timeout=60_000)
            # ...and unmuting (the M shortcut) lets the next passage through.
            unmuted_at = time.time()
            await page.keyboard.press("m")
            assert await page.get_attribute("#toggle-mic", "aria-pressed") == "false"
            await asyncio.wait_for(final_from_amal.wait(), 120)
        finally:
            leave.set()
        report = await asyncio.wait_for(jean, 60)

    # Every caption of Amal's is of speech after she unmuted (half a second for the audio's way there).
    starts = [report.room_opened_at + event["start_s"] for event in heard]
    assert starts and min(starts) >= unmuted_at - 0.5, (unmuted_at, heard)


async def test_a_full_consultation_and_a_made_up_link_say_so(server: RunningServer) -> None:
    from conftest import require_browser

    chromium = require_browser()
    host = server.member("Dr Full Host", "full.host@example.org")
    server.member("Dr Full Guest", "full.guest@example.org")
    server.member("Dr Third Person", "third@example.org")
    room_url = create_room(server, host, "consultation", "Two only")
    leave = asyncio.Event()
    seated = [
        asyncio.create_task(
            join_room(
                room_url, email=email, password=PASSWORD, audio=None, speaks="en", captions="en", leave=leave
            )
        )
        for email in ("full.host@example.org", "full.guest@example.org")
    ]
    try:
        for _ in range(150):
            if len(await room_participants(server, host, room_url)) == 2:
                break
            await asyncio.sleep(0.2)
        async with launched(chromium) as browser:
            page = await new_page(browser)
            await sign_in_to_prejoin(page, room_url, "third@example.org")
            await wait_until(page, "() => document.querySelector('#preview-video').videoWidth > 0")
            await page.click("#join-button")
            await page.locator("#notice").filter(has_text="This consultation is full").wait_for()
            await page.wait_for_selector("#lobby:not([hidden])")
            # The camera and microphone are released: no video element holds a live track.
            assert await page.evaluate(
                """() => [...document.querySelectorAll('video')].every((v) => !v.srcObject ||
                    v.srcObject.getTracks().every((track) => track.readyState === 'ended'))"""
            )
            assert await page.locator("#tile-self").count() == 0

            await page.goto(server.base_url + "/r/madeUpRoom123")
            await page.locator("#no-room").filter(has_text="No such room").wait_for()
            assert await page.locator("#call").is_hidden()
            await assert_accessible(page, "the no-such-room page")
    finally:
        leave.set()
        await asyncio.wait_for(asyncio.gather(*seated), 60)


async def test_the_captions_outlast_an_outage_and_the_call_rejoins_when_the_server_is_back(
    whisper_model_path: Path, speech_dir: Path, tmp_path: Path
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = start_server(data_dir, whisper_model_path)
    microphone = padded_speech(speech_dir / "en_jfk.flac", tmp_path / "jfk.wav", lead_s=1.0, tail_s=3.0)
    try:
        amal = server.member("Dr Amal Haddad", "amal@example.org")
        room_url = create_room(server, amal, "consultation", "Night outage")
        async with page_with_microphone(chromium, tmp_path / "profile", microphone) as page:
            await sign_in_to_prejoin(page, room_url, "amal@example.org")
            await page.select_option("#speaks", "en")
            await page.uncheck("#audio-processing")
            await page.click("#join-button")
            final = page.locator("#captions .caption.final").filter(has_text=re.compile("country", re.I))
            await final.first.wait_for(timeout=90_000)

            # The server goes away for longer than the quick retries: the page keeps trying,
            # slowly, and the captions stay readable and downloadable.
            await asyncio.to_thread(stop_server, server)
            banner = page.locator("#connection-banner")
            await banner.filter(has_text="Still trying").wait_for(timeout=120_000)
            assert await final.first.is_visible()
            assert await page.locator("#retry-now").is_visible()
            async with page.expect_download() as download_info:
                await page.click("#download-captions")
            download = Path(await (await download_info.value).path())
            saved = await asyncio.to_thread(download.read_text, encoding="utf-8")
            assert "Night outage" in saved and re.search("country", saved, re.I), saved

            # Back: "Try now" rejoins at once, and the captions from before are still there.
            await asyncio.to_thread(start_stopped_server, server)
            await page.click("#retry-now")
            await banner.wait_for(state="hidden", timeout=60_000)
            await page.locator("#call-title").filter(has_text="Night outage").wait_for()
            assert await final.first.is_visible()
            for _ in range(150):
                if "joined room" in server.log():
                    break
                await asyncio.sleep(0.2)
            assert "joined room" in server.log()
    finally:
        stop_server(server)


async def test_the_phone_layout_and_the_arabic_interface(
    server: RunningServer, speech_dir: Path, tmp_path: Path
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    server.member("Dr Layla Phone", "layla@example.org")
    microphone = padded_speech(speech_dir / "en_jfk.flac", tmp_path / "jfk.wav", lead_s=2.0, tail_s=4.0)
    async with page_with_microphone(
        chromium, tmp_path / "profile", microphone, viewport={"width": 390, "height": 844}
    ) as page:
        await page.goto(server.base_url + "/")
        await sign_in(page, "layla@example.org")
        # A named room, created from the lobby.
        await page.fill("#room-title", "Ward round")
        await page.click("#new-consultation")
        await page.locator("#prejoin-room").filter(has_text="Ward round").wait_for()
        assert await page.evaluate(NO_OVERFLOW), "the pre-join check overflows a phone's width"
        await page.select_option("#speaks", "en")
        await page.uncheck("#audio-processing")
        await page.click("#join-button")
        await page.locator("#call-title").filter(has_text="Ward round").wait_for()
        caption = page.locator("#captions .caption.final").last
        await caption.wait_for(timeout=90_000)

        # Captions and the speaker's tile share the screen; nothing runs off it sideways.
        for selector in ("#captions .caption.final >> nth=-1", "#tile-self", "#toggle-mic", "#leave"):
            box = await page.locator(selector).bounding_box()
            assert box is not None, selector
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (selector, box)
            assert box["y"] >= 0 and box["y"] + box["height"] <= 844, (selector, box)
        assert await page.evaluate(NO_OVERFLOW), "the call overflows a phone's width"
        # The people list does not scroll away with the captions; on a phone it starts folded,
        # leaving the room to the captions and the chat.
        assert await page.locator("#captions #people").count() == 0
        assert await page.locator("#people").is_hidden()
        for selector in ("#chat-text", "#chat-send"):
            box = await page.locator(selector).bounding_box()
            assert box is not None and box["y"] + box["height"] <= 844, (selector, box)
        await assert_accessible(page, "the call on a phone")
        await keep_screenshot(page, "call-phone.png")

        # The interface in Arabic: right to left, its own digits everywhere, remembered.
        await page.select_option("#interface-language", "ar")
        await page.wait_for_selector("html[dir=rtl][lang=ar]")
        await page.locator("#leave").filter(has_text="مغادرة").wait_for()
        assert await caption.evaluate("node => getComputedStyle(node).direction") == "rtl"
        assert await page.evaluate("() => localStorage.getItem('babelcall.interfaceLanguage')") == "ar"
        # The timer's digits are those of the Arabic locale (whichever numerals CLDR gives it), the
        # same as the people count's, not the browser's own locale's.
        zero = await page.evaluate("() => new Intl.NumberFormat('ar').format(0)")
        arabic_digits = "".join(chr(ord(zero) + n) for n in range(10))
        timer = await page.locator("#call-timer").inner_text()
        assert re.fullmatch(f"[{arabic_digits}]+:[{arabic_digits}]{{2}}", timer), timer
        assert (await page.locator("#people-count").inner_text()) in arabic_digits
        await page.click("#people-panel summary")
        people = await page.locator("#people").inner_text()
        assert "الإنجليزية" in people and not re.search(
            r"[A-Za-z]{4,}", people.replace("Dr Layla Phone", "")
        ), people
        assert await page.evaluate(NO_OVERFLOW), "the Arabic call overflows a phone's width"
        await assert_accessible(page, "the Arabic call on a phone")
        await page.set_viewport_size({"width": 1280, "height": 800})
        # A large screen gives the video its space (the tile once stayed ~390 px wide).
        tile = await page.locator("#tile-self").bounding_box()
        assert tile is not None and tile["width"] > 600, tile
        await keep_screenshot(page, "call-arabic.png")
        await page.select_option("#interface-language", "en")
        await page.wait_for_selector("html[dir=ltr][lang=en]")
        assert re.fullmatch(r"\d+:\d{2}", await page.locator("#call-timer").inner_text())


async def test_the_room_name_given_at_creation_is_the_calls_title(server: RunningServer) -> None:
    """The lobby's name field goes to the REST API's `title` (a quick check without media)."""
    from conftest import require_browser

    chromium = require_browser()
    member = server.member("Dr Noor Named", "noor@example.org")
    async with launched(chromium) as browser:
        page = await new_page(browser)
        await page.goto(server.base_url + "/")
        await sign_in(page, "noor@example.org")
        await page.fill("#room-title", "Tumour board: Mr Q")
        await page.click("#new-review")
        await page.wait_for_selector("#prejoin:not([hidden])")
    status, body = member.call("GET", "/api/rooms")
    assert status == 200 and [room["title"] for room in body["rooms"]] == ["Tumour board: Mr Q"], body
    assert body["rooms"][0]["kind"] == "review"


async def test_media_that_never_connects_is_reported(server: RunningServer) -> None:
    """Without loopback ICE candidates Chromium's media cannot reach the server: the page says so,
    instead of looking normal with nothing flowing."""
    from conftest import require_browser

    chromium = require_browser()
    host = server.member("Dr Nina Firewall", "nina@example.org")
    room_url = create_room(server, host, "consultation", "Blocked media")
    no_ice = [flag for flag in CHROMIUM_FLAGS if flag != "--allow-loopback-in-peer-connection"]
    async with launched(chromium, no_ice) as browser:
        page = await new_page(browser)
        await sign_in_to_prejoin(page, room_url, "nina@example.org")
        await page.click("#join-button")
        await page.locator("#call-title").filter(has_text="Blocked media").wait_for()
        await page.locator("#connection-banner").filter(has_text="not reaching the server").wait_for()
        await page.locator("#people li .connection.no-media").wait_for()


async def test_caption_lines_in_progress_stay_at_the_bottom_and_are_cut_off_when_the_connection_drops(
    server: RunningServer,
) -> None:
    """The caption module itself, in the page (imported as the page imports it), fed caption events."""
    from conftest import require_browser

    chromium = require_browser()
    async with launched(chromium) as browser:
        page = await new_page(browser)
        await page.goto(server.base_url + "/")
        await page.wait_for_selector("#auth:not([hidden])")
        steps = await page.evaluate(
            """async () => {
                const { CaptionBoard } = await import("/static/js/captions.js");
                const $ = (s) => document.querySelector(s);
                const board = new CaptionBoard({
                    lines: $("#caption-lines"), live: $("#caption-live"), scroller: $("#captions"),
                });
                const event = (id, speaker, text, final) => ({
                    type: "caption", version: 2, room: "r", speaker_id: speaker, speaker_name: speaker,
                    utterance_id: id, kind: final ? "final" : "partial", source_language: "en",
                    caption_language: "en", text, stable_chars: 0, path: "original", note: null,
                    start_s: 0, end_s: 1, sent_at: Date.now() / 1000, replaces: [], confidence: null,
                    uncertain: false, model: null, timings: {},
                });
                const text = (n) => n.querySelector(".text").textContent;
                const lines = () => [...document.querySelectorAll("#captions .caption")].map((n) =>
                    [n.parentElement.id, n.dataset.utterance, n.className, text(n)].join(":"));
                const steps = [];
                board.show(event("a-1", "Amal", "And so my", false));
                board.show(event("j-1", "Jean", "Bonjour", false));
                board.show(event("j-1", "Jean", "Bonjour à tous.", true));
                board.show(event("a-1", "Amal", "And so my fellow", false));
                board.show(event("j-1", "Jean", "Bonjour à", false));  // a partial after its final
                board.show(event("x-1", "Omar", "", false));
                steps.push(lines());
                board.cutOff();
                steps.push(lines());
                steps.push(document.querySelector("#caption-lines .cut-off .note").textContent);
                return steps;
            }"""
        )
    during, after_drop, note = steps
    # Jean's final sits above Amal's line in progress, which stays at the bottom; the late partial
    # does not undo the final.
    assert during == [
        "caption-lines:j-1:caption final:Bonjour à tous.",
        "caption-live:a-1:caption partial:And so my fellow",
        "caption-live:x-1:caption partial:",
    ], during
    # The drop closes Amal's unfinished line as cut off and drops the empty one.
    assert after_drop == [
        "caption-lines:j-1:caption final:Bonjour à tous.",
        "caption-lines:a-1:caption cut-off:And so my fellow",
    ], after_drop
    assert "cut off" in note


async def test_the_interface_follows_the_browsers_language_until_another_is_chosen(
    server: RunningServer,
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    async with launched(chromium) as browser:
        page = await new_page(browser, locale="ja-JP")
        await page.goto(server.base_url + "/")
        await page.wait_for_selector("html[lang=ja][dir=ltr]")
        await page.locator("#sign-in h2").filter(has_text="ログイン").wait_for()
        await assert_accessible(page, "the sign-in page in Japanese")
        # Chosen in the header, the language is remembered over the browser's.
        await page.select_option("#interface-language", "th")
        await page.locator("#sign-in h2").filter(has_text="เข้าสู่ระบบ").wait_for()
        await page.reload()
        await page.wait_for_selector("html[lang=th]")
        assert await page.input_value("#interface-language") == "th"


# A caption board of its own, laid out (the call's is hidden on the sign-in page), fed caption events
# as the call feeds them: `window.board`, `window.caption(id, kind, text, fields)`, `window.place(id)`
# (where a line is in the scrolled area) and `window.settledView()`.
SETTLING_BOARD = """async () => {
    const { CaptionBoard } = await import("/static/js/captions.js");
    const scroller = document.createElement("div");
    scroller.className = "captions-scroll";
    scroller.style.height = "240px";  // CSSOM, which the page's Content-Security-Policy allows
    scroller.style.width = "360px";
    const lines = document.createElement("ol");
    const live = document.createElement("ol");
    scroller.append(lines, live);
    document.body.append(scroller);
    window.scroller = scroller;
    window.board = new CaptionBoard({ lines, live, scroller });
    window.caption = (id, kind, text, fields = {}) => ({
        type: "caption", version: 2, room: "r", speaker_id: "s", speaker_name: "Dr Amal", utterance_id: id,
        kind, source_language: "en", caption_language: "en", text, stable_chars: text.length,
        path: "original", note: null, start_s: 0, end_s: 1, sent_at: Date.now() / 1000, replaces: [],
        confidence: kind === "partial" ? null : 0.9, uncertain: false, model: null, timings: {}, ...fields,
    });
    window.line = (id) => lines.querySelector(`[data-utterance="${id}"]`);
    window.place = (id) => line(id).getBoundingClientRect().top - scroller.getBoundingClientRect().top;
    window.atBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 2;
    window.texts = () => [...lines.children].map(
        (n) => n.dataset.utterance + ":" + n.querySelector(".text").textContent);
    for (let n = 0; n < 40; n += 1) board.show(caption(`u${n}`, "final", `Line ${n} of the consultation.`));
}"""


async def test_settled_captions_take_the_place_of_the_lines_they_replace_without_moving_the_reader(
    server: RunningServer,
) -> None:
    """Protocol 2's settled captions, uncertain text, the model's name and chat lines, rendered by the
    caption module in the page (imported as the page imports it)."""
    from conftest import require_browser

    chromium = require_browser()
    async with launched(chromium) as browser:
        page = await new_page(browser)
        await page.goto(server.base_url + "/")
        await page.wait_for_selector("#auth:not([hidden])")
        await page.evaluate(SETTLING_BOARD)
        assert await page.evaluate("() => atBottom()")  # the board follows new lines

        # The reader scrolls up to read line 20; above it, the second pass merges lines 5 and 6
        # into one longer line and finds line 10 was no speech. Line 20 stays where it was.
        moved = await page.evaluate(
            """() => {
                scroller.scrollTop += place("u20");
                const before = place("u20");
                line("u5").marker = "the same element";
                board.show(caption("u5", "settled",
                    "Line five and six, heard together with what came after, as one sentence that is " +
                    "long enough to wrap onto several lines of the caption panel.",
                    { replaces: ["u5", "u6"] }));
                board.show(caption("u10", "settled", "", { replaces: ["u10"] }));
                return { before, after: place("u20"), marker: line("u5").marker,
                         highlighted: line("u5").classList.contains("just-settled"),
                         classes: line("u5").className };
            }"""
        )
        assert abs(moved["after"] - moved["before"]) < 1, moved
        assert moved["marker"] == "the same element" and moved["highlighted"], moved  # rewritten in place
        assert moved["classes"].split() == ["caption", "settled", "final", "just-settled"], moved
        texts = await page.evaluate("() => texts()")
        assert texts[4:7] == [
            "u4:Line 4 of the consultation.",
            "u5:Line five and six, heard together with what came after, as one sentence that is long "
            "enough to wrap onto several lines of the caption panel.",
            "u7:Line 7 of the consultation.",
        ], texts[4:7]
        assert not [text for text in texts if text.startswith(("u6:", "u10:"))], texts

        # Nothing older comes back: a final arriving after its settled version, a late final of a
        # line that was merged away, a second settled version.
        await page.evaluate(
            """() => {
                board.show(caption("u5", "final", "Line 5 of the consultation."));
                board.show(caption("u6", "final", "Line 6 of the consultation."));
                board.show(caption("u10", "partial", "Line 10"));
                board.show(caption("u5", "settled", "Something else.", { replaces: ["u5"] }));
            }"""
        )
        assert await page.evaluate("() => texts()") == texts

        # A reader at the bottom stays at the bottom when a line above is settled.
        at_bottom = await page.evaluate(
            """() => {
                scroller.scrollTop = scroller.scrollHeight;
                board.show(caption("u30", "settled", "Line thirty, settled with a longer text that " +
                    "takes more room than the final did, on two or three lines.", { replaces: ["u30"] }));
                return atBottom();
            }"""
        )
        assert at_bottom

        # Unsure words are marked in words, not only underlined, and the badge names the path and
        # the models that produced the text; a missing model is said in the reader's language.
        marked = await page.evaluate(
            """() => {
                board.show(caption("z1", "final", "Douleur thoracique depuis hier.", {
                    source_language: "zh", caption_language: "fr", path: "pivot", uncertain: true,
                    confidence: 0.31, model: "translate-zh_en-1_9+opus-mt-en-fr" }));
                board.show(caption("t1", "final", "Take it twice a day.", {
                    caption_language: "en", target_language: "th", path: "untranslated",
                    note: "not translated: no model for en→th", note_code: "no_model" }));
                const node = line("z1");
                const text = node.querySelector(".text");
                return { badge: node.querySelector(".lang").textContent,
                         path: node.querySelector(".lang").title,
                         underline: getComputedStyle(text).textDecorationStyle,
                         hint: text.title, flag: node.querySelector(".flag").textContent,
                         spoken: node.innerText,
                         note: line("t1").querySelector(".note").textContent };
            }"""
        )
        assert marked["badge"] == "zh→fr", marked
        assert marked["path"].endswith("zh→en→fr: translate-zh_en-1_9 + opus-mt-en-fr"), marked
        assert "through English" in marked["path"], marked
        assert marked["underline"] == "dotted" and "unsure" in marked["hint"], marked
        assert marked["flag"] == "uncertain" and "uncertain" in marked["spoken"], marked
        assert "null" not in marked["spoken"], marked
        assert marked["note"] == "Not translated: no English to Thai translation on this server.", marked

        # A chat message is a line of the same board, marked as chat, with the words as typed.
        chat = await page.evaluate(
            """() => {
                board.show(caption("u40", "partial", "And the dose"));
                board.showChat({ type: "chat", id: "p-c0", sender_id: "p", sender_name: "Dr Jean",
                    source_language: "en", language: "fr", text: "Donner 25 mg de métoprolol.",
                    original: "Give 25 mg of metoprolol.", path: "machine", note: null,
                    model: "opus-mt-en-fr", sent_at: Date.now() / 1000 });
                const node = board.lines.querySelector('[data-chat="p-c0"]');
                return { last: board.lines.lastElementChild === node, classes: node.className,
                         tag: node.querySelector(".chat-tag").textContent,
                         path: node.querySelector(".lang").title,
                         original: node.querySelector(".original").textContent };
            }"""
        )
        assert chat["last"] and "chat" in chat["classes"].split(), chat  # above the line in progress
        assert chat["tag"] == "chat" and chat["path"].endswith("en→fr: opus-mt-en-fr"), chat
        assert chat["original"] == "As written (English): Give 25 mg of metoprolol.", chat

        # The reader's copy holds the newest text of each line, in the order shown, and the chat.
        async with page.expect_download() as download_info:
            await page.evaluate("() => board.download('Settling')")
        path = Path(await (await download_info.value).path())
        saved = await asyncio.to_thread(path.read_text, encoding="utf-8")
    assert saved.startswith("BabelCall captions: Settling"), saved
    assert "Dr Amal (en): Line five and six, heard together" in saved, saved
    assert "Line 6 of" not in saved and "Line 10 of" not in saved and "Line 30 of" not in saved, saved
    assert saved.index("Line 4 of") < saved.index("Line five and six") < saved.index("Line 7 of"), saved
    assert "Douleur thoracique depuis hier. [uncertain]" in saved, saved
    assert "Dr Jean (chat, en→fr, machine translation): Donner 25 mg de métoprolol." in saved, saved
    assert "[As written (English): Give 25 mg of metoprolol.]" in saved, saved
    assert "And the dose" not in saved  # a line in progress is not in the copy


async def test_the_notes_of_untranslated_captions_are_shown_in_the_readers_language(
    server: RunningServer,
) -> None:
    """The server writes each caveat once (mt/plan.py), in English, with a code; a French reader's page
    shows it from the French catalogue by its code, with the languages named in French. A code the page
    does not know (a newer server's) is shown as the server wrote it."""
    from conftest import require_browser

    from mt.plan import FOLLOWS_AT_SENTENCE_END, copied_note, failed_note, no_model_note, whisper_missing_note

    notes = [
        (no_model_note("vi", "ja"), "vi", "ja", "captions.notTranslated"),
        (failed_note("opus-mt-ar-en", "ar", "en"), "ar", "en", "captions.translationFailed"),
        (whisper_missing_note("ar", "en"), "ar", "en", "captions.whisperNextSentence"),
        (copied_note("nllb-200-distilled-600M", "ja"), "vi", "ja", "captions.repeatedSource"),
        (FOLLOWS_AT_SENTENCE_END, "vi", "ar", "captions.followsAtSentenceEnd"),
    ]
    items = [
        {
            "note": note.text,
            "note_code": note.code.value,
            "source_language": source,
            "target_language": target,
            "path": "untranslated",
        }
        for note, source, target, _ in notes
    ]
    newer = {**items[0], "note": "not translated: a caveat of the future", "note_code": "future_reason"}
    chromium = require_browser()
    async with launched(chromium) as browser:
        page = await new_page(browser, locale="fr-FR")
        await page.goto(server.base_url + "/")
        await page.wait_for_selector("html[lang=fr]")
        shown = await page.evaluate(
            """async (items) => {
                const { noteText } = await import("/static/js/paths.js");
                const { languageName } = await import("/static/js/i18n.js");
                const codes = ["vi", "ja", "ar", "en"];
                const names = Object.fromEntries(codes.map((c) => [c, languageName(c)]));
                return { texts: items.map((item) => noteText(item)), names };
            }""",
            [*items, newer],
        )
    french = json.loads(FRENCH_CATALOGUE.read_text(encoding="utf-8"))
    names = shown["names"]
    assert names["ja"] != "ja" and names["ja"] != "Japanese"  # named in French
    *texts, newer_text = shown["texts"]
    for text, (_, source, target, key) in zip(texts, notes, strict=True):
        expected = french[key].replace("{from}", names[source]).replace("{to}", names[target])
        assert text == expected, key
    assert newer_text == "not translated: a caveat of the future"
