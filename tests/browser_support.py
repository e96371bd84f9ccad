"""What the browser tests share: Chromium's flags, signing in through the page, and axe-core checks."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from harness import PASSWORD, RunningServer

from participant.rest import RestClient

ROOT = Path(__file__).resolve().parents[1]
AXE = ROOT / ".test-deps" / "node_modules" / "axe-core" / "axe.min.js"

# Debian's Chromium, headless, with fake devices and loopback ICE (../shared/notes/webrtc-browser-testing.md).
BASE_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]
# Every permission prompt answered "allow": for tests that are not about permissions.
CHROMIUM_FLAGS = [*BASE_FLAGS, "--use-fake-ui-for-media-stream"]


@asynccontextmanager
async def launched(chromium: str, args: Sequence[str] = CHROMIUM_FLAGS) -> AsyncIterator[Any]:
    """Headless Chromium from `chromium` (conftest.require_browser(), called first so that a test skips
    before it starts a server), closed however the test ends."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, headless=True, args=list(args))
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def page_with_microphone(
    chromium: str, profile: Path, microphone: Path, *, loop: bool = True, **context_options: Any
) -> AsyncIterator[Any]:
    """The page of a headless Chromium (its own profile) whose fake microphone plays `microphone`, over
    and over unless `loop` is False; closed however the test ends."""
    from playwright.async_api import async_playwright

    capture = f"--use-file-for-fake-audio-capture={microphone}" + ("" if loop else "%noloop")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            headless=True,
            args=[*CHROMIUM_FLAGS, capture],
            **context_options,
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            await context.close()


def create_room(server: RunningServer, host: RestClient, kind: str, title: str) -> str:
    """A room `host` creates over the REST API; its link."""
    status, body = host.call("POST", "/api/rooms", {"kind": kind, "title": title})
    assert status == 201, body
    return server.base_url + str(body["link"])


async def new_page(browser: Any, **context_options: Any) -> Any:
    """A page in a browser context of its own: its own cookies, so its own member."""
    page = await (await browser.new_context(**context_options)).new_page()
    page.set_default_timeout(30_000)
    return page


async def sign_in(page: Any, email: str) -> None:
    """Sign in on the page's sign-in form (shown to whoever is signed out)."""
    await page.fill("#sign-in input[name=email]", email)
    await page.fill("#sign-in input[name=password]", PASSWORD)
    await page.click("#sign-in button[type=submit]")


async def sign_in_to_prejoin(page: Any, room_url: str, email: str) -> None:
    """Open a room link signed out, sign in on the page, and wait for the room's pre-join check."""
    await page.goto(room_url)
    await sign_in(page, email)
    await page.wait_for_selector("#prejoin:not([hidden])")


async def join_the_call(page: Any, room_url: str, email: str, title: str, speaks: str | None = None) -> None:
    """Sign in from the room link, join the call (speaking `speaks` if given), and wait until the page
    shows the call titled `title`."""
    await sign_in_to_prejoin(page, room_url, email)
    if speaks is not None:
        await page.select_option("#speaks", speaks)
    await page.click("#join-button")
    await page.locator("#call-title").filter(has_text=title).wait_for()


async def wait_until(page: Any, expression: str, timeout_s: float = 30.0) -> Any:
    """Poll a function expression in the page until it returns something truthy (the page's
    Content-Security-Policy forbids the string evaluation wait_for_function uses)."""
    for _ in range(int(timeout_s / 0.2)):
        value = await page.evaluate(expression)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"never true: {expression}")


async def serious_accessibility_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now. axe is evaluated through
    the DevTools protocol, which the page's Content-Security-Policy (no inline scripts) does not cover."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    violations = await page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
        }"""
    )
    return list(violations)


async def assert_accessible(page: Any, where: str) -> None:
    assert AXE.exists(), "axe-core is missing: run scripts/setup.sh --test"
    violations = await serious_accessibility_violations(page)
    assert not violations, f"{where}: " + "; ".join(violations)


async def keep_screenshot(page: Any, name: str) -> None:
    """The README's screenshots: written to $BABELCALL_SCREENSHOTS (e.g. docs/images) when it is set."""
    folder = os.environ.get("BABELCALL_SCREENSHOTS")
    if folder:
        await page.screenshot(path=str(Path(folder) / name))
