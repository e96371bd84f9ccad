"""Working together in a call, in real Chromium: chat translated for each reader (through a synthetic
en→fr model: random weights, so the French is nonsense, but it is the model's and marked as such), a
shared screen that reaches the other browser and goes when sharing stops, and the reader's choice of
Chinese script.

Runs inside the private network namespace scripts/test.sh creates; at most two browsers at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    assert_accessible,
    create_room,
    keep_screenshot,
    launched,
    new_page,
    sign_in_to_prejoin,
    wait_until,
)
from harness import RunningServer, start_server, stop_server
from mt_models import build_marian_pair

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TYPED = "Give metoprolol 25 mg twice daily."


@pytest.fixture(scope="module")
def translating_server(
    tmp_path_factory: pytest.TempPathFactory, whisper_model_path: Path
) -> Iterator[RunningServer]:
    """A server with one translation model, en→fr (random weights, OPUS-MT's shape)."""
    models = tmp_path_factory.mktemp("models")
    build_marian_pair(models / "opus-mt-en-fr", "en", "fr")
    running = start_server(
        tmp_path_factory.mktemp("server"), whisper_model_path, translation_models_dir=str(models)
    )
    yield running
    stop_server(running)


async def participant_id(page: Any, name: str) -> str:
    """The id of the participant called `name`, from the page's list of people."""
    item = page.locator("#people li").filter(has_text=name)
    await item.wait_for()
    return str(await item.get_attribute("data-participant-id"))


async def test_chat_reaches_the_other_reader_translated_with_the_original_and_a_shared_screen_too(
    translating_server: RunningServer,
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    server = translating_server
    host = server.member("Dr Amal Haddad", "amal@example.org")
    server.member("Dr Jean Morel", "jean@example.org")
    room_url = create_room(server, host, "review", "Tumour board")
    async with launched(chromium) as browser:
        amal = await new_page(browser, viewport={"width": 1280, "height": 800})
        await sign_in_to_prejoin(amal, room_url, "amal@example.org")
        await amal.select_option("#speaks", "en")
        await amal.select_option("#captions-language", "en")
        await amal.click("#join-button")
        await amal.locator("#call-title").filter(has_text="Tumour board").wait_for()
        jean = await new_page(browser, viewport={"width": 1280, "height": 800}, locale="fr-FR")
        await sign_in_to_prejoin(jean, room_url, "jean@example.org")
        await jean.select_option("#speaks", "fr")
        await jean.select_option("#captions-language", "fr")
        await jean.click("#join-button")
        await jean.locator("#call-title").filter(has_text="Tumour board").wait_for()
        amal_id = await participant_id(jean, "Dr Amal Haddad")
        await participant_id(amal, "Dr Jean Morel")

        # Amal writes (Enter sends): Jean reads it through the en→fr model, marked as chat and as
        # machine translation, with her words as typed beneath; Amal reads her own words.
        await amal.fill("#chat-text", TYPED)
        await amal.press("#chat-text", "Enter")
        on_jean = jean.locator("#caption-lines .caption.chat[data-path=machine]")
        await on_jean.wait_for()
        assert await on_jean.locator(".speaker").inner_text() == "Dr Amal Haddad"
        assert await on_jean.locator(".chat-tag").inner_text() == "message"  # Jean's page is French
        assert await on_jean.locator(".text").get_attribute("lang") == "fr"
        assert await on_jean.locator(".text").inner_text() != TYPED
        assert "opus-mt-en-fr" in str(await on_jean.locator(".lang").get_attribute("title"))
        original = on_jean.locator(".original")
        assert await original.inner_text() == f"Tel qu'écrit (anglais) : {TYPED}"
        assert await original.locator("[lang=en]").inner_text() == TYPED
        on_amal = amal.locator("#caption-lines .caption.chat[data-path=original]")
        await on_amal.filter(has_text=TYPED).wait_for()
        assert await on_amal.locator(".original").count() == 0
        assert (await on_amal.inner_text()).split() == [
            "Dr",
            "Amal",
            "Haddad",
            "chat",
            "en",
            *TYPED.split(),
        ]
        assert await amal.input_value("#chat-text") == ""

        # Jean writes in French, which no model here turns into English: Amal reads it as written,
        # and is told why.
        await jean.fill("#chat-text", "Bonjour à tous")
        await jean.click("#chat-send")
        untranslated = amal.locator("#caption-lines .caption.chat[data-path=untranslated]")
        await untranslated.filter(has_text="Bonjour à tous").wait_for()
        assert (
            await untranslated.locator(".note").inner_text()
            == "Not translated: no French to English translation on this server."
        )

        # Too long a message is refused with the reason, and stays in the box to be shortened.
        too_long = "x" * 2001
        await amal.fill("#chat-text", too_long)
        await amal.click("#chat-send")
        await amal.locator("#chat-error").filter(has_text="at most 2,000 characters").wait_for()
        assert await amal.input_value("#chat-text") == too_long
        await assert_accessible(amal, "the call with a chat error")
        await amal.fill("#chat-text", "")
        await amal.locator("#chat-error").wait_for(state="hidden")

        # Eight messages sent at once: the server translates three of a writer's at a time and
        # refuses the next with `chat_busy`; the page gives a refused text back, with the reason.
        await amal.evaluate(
            """() => {
                const input = document.querySelector("#chat-text");
                for (let i = 1; i <= 8; i++) {
                    input.value = `Burst message ${i}`;
                    document.querySelector("#chat-send").click();
                }
            }"""
        )
        await amal.locator("#chat-error").filter(has_text="still being translated").wait_for()
        assert "Burst message" in await amal.input_value("#chat-text")
        await amal.fill("#chat-text", "")
        await amal.locator("#chat-error").wait_for(state="hidden")

        # Amal shares her screen: it reaches Jean's page, playing, in the main area, with the
        # cameras in a strip beside it.
        await amal.click("#toggle-screen")
        await amal.wait_for_selector("#toggle-screen[aria-pressed=true]")  # once the browser gave it
        screen = f"document.querySelector('#screen-{amal_id} video')"
        await jean.wait_for_selector(f"#screen-{amal_id} video")
        await wait_until(jean, f"() => {screen}.videoWidth > 0", timeout_s=60)
        started = await jean.evaluate(f"() => {screen}.currentTime")
        await wait_until(jean, f"() => {screen}.currentTime > {started} + 1", timeout_s=60)
        await (
            jean.locator("#people li")
            .filter(has_text="Dr Amal Haddad")
            .filter(has_text="partage son écran")
            .wait_for()
        )
        shared = await jean.locator(f"#screen-{amal_id}").bounding_box()
        camera = await jean.locator(f"#tile-{amal_id}").bounding_box()
        assert shared is not None and camera is not None
        assert shared["width"] * shared["height"] > 4 * camera["width"] * camera["height"], (
            shared,
            camera,
        )
        assert await jean.locator(".main-area.presenting").count() == 1
        await assert_accessible(jean, "the call with a shared screen and chat, in French")
        await keep_screenshot(amal, "call-sharing.png")

        # On a phone the shared screen keeps the main area, with the chat and its composer below.
        await jean.set_viewport_size({"width": 390, "height": 844})
        boxes = {}
        for selector in (
            f"#screen-{amal_id}",
            f"#tile-{amal_id}",
            "#caption-lines .chat >> nth=0",
            "#chat-text",
        ):
            box = await jean.locator(selector).bounding_box()
            assert box is not None, selector
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (selector, box)
            assert box["y"] >= 0 and box["y"] + box["height"] <= 844, (selector, box)
            boxes[selector] = box
        shared, camera = boxes[f"#screen-{amal_id}"], boxes[f"#tile-{amal_id}"]
        assert shared["width"] * shared["height"] > 2 * camera["width"] * camera["height"], (
            shared,
            camera,
        )
        assert await jean.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        await assert_accessible(jean, "the call with a shared screen on a phone")
        await jean.set_viewport_size({"width": 1280, "height": 800})

        # The reader's copy holds the chat with the words as typed.
        async with jean.expect_download() as download_info:
            await jean.click("#download-captions")
        path = Path(await (await download_info.value).path())
        saved = await asyncio.to_thread(path.read_text, encoding="utf-8")
        assert "Dr Amal Haddad (message, en→fr, traduction automatique): " in saved, saved
        assert f"[Tel qu'écrit (anglais) : {TYPED}]" in saved, saved

        # She stops sharing: the screen leaves Jean's page and the cameras have the space again.
        await amal.click("#toggle-screen")
        await jean.locator(f"#screen-{amal_id}").wait_for(state="detached")
        assert await jean.locator("#screens").is_hidden()
        assert await jean.locator(".main-area.presenting").count() == 0
        assert await amal.get_attribute("#toggle-screen", "aria-pressed") == "false"


async def test_a_reader_of_chinese_chooses_the_script_and_it_is_sent_and_remembered(
    server: RunningServer,
) -> None:
    from conftest import require_browser

    chromium = require_browser()
    host = server.member("Dr Wei Script", "wei@example.org")
    room_url = create_room(server, host, "consultation", "Script choice")
    sent: list[dict[str, Any]] = []

    def watch(socket: Any) -> None:
        socket.on("framesent", lambda payload: sent.append(json.loads(payload)))

    async with launched(chromium) as browser:
        page = await new_page(browser)
        page.on("websocket", watch)
        await sign_in_to_prejoin(page, room_url, "wei@example.org")
        # Offered only with Chinese captions; simplified unless the reader chooses otherwise.
        await page.select_option("#captions-language", "en")
        assert await page.locator("#chinese-script").is_hidden()
        await page.select_option("#captions-language", "zh")
        assert await page.locator("#chinese-script").is_visible()
        assert await page.input_value("#chinese-script") == "simplified"
        await page.select_option("#chinese-script", "traditional")
        await assert_accessible(page, "the pre-join check with the Chinese script")
        await page.click("#join-button")
        await page.locator("#call-title").filter(has_text="Script choice").wait_for()
        joins = [message for message in sent if message["type"] == "join"]
        assert joins and joins[0]["captions"] == "zh" and joins[0]["chinese_script"] == "traditional"
        assert await page.input_value("#call-chinese-script") == "traditional"

        # Changed mid-call: sent with the caption language, and remembered for the next call.
        await page.select_option("#call-chinese-script", "simplified")
        for _ in range(50):
            if any(message["type"] == "languages" for message in sent):
                break
            await asyncio.sleep(0.2)
        changes = [message for message in sent if message["type"] == "languages"]
        assert changes[-1] == {"type": "languages", "captions": "zh", "chinese_script": "simplified"}
        await page.select_option("#call-captions-language", "en")
        assert await page.locator("#call-chinese-script").is_hidden()
        await page.click("#leave")
        await page.wait_for_selector("#lobby:not([hidden])")
        await page.goto(room_url)
        await page.wait_for_selector("#prejoin:not([hidden])")
        await page.select_option("#captions-language", "zh")
        assert await page.input_value("#chinese-script") == "simplified"
