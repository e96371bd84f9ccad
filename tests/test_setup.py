"""A new server's administrator: made with the one-time setup link `babelcall serve` prints, or with
`babelcall admin create`; never by being the first to apply."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from harness import PASSWORD as HARNESS_PASSWORD
from harness import start_server, stop_server
from rest_app import PASSWORD, api_only_app, cheap_passwords, error_code

from server.config import Config
from server.context import AppContext


def setup_body(token: object, email: str = "chief@example.org") -> dict[str, object]:
    return {
        "token": token,
        "name": "Dr Chief",
        "email": email,
        "password": PASSWORD,
        "organisation": "Clinic",
    }


async def test_the_first_applicant_is_not_the_administrator(tmp_path: Path) -> None:
    app = api_only_app(Config(data_dir=tmp_path, media_workers=1), cheap_passwords())
    async with TestServer(app) as server, TestClient(server) as client:
        response = await client.post(
            "/api/apply", json={"name": "First", "email": "first@example.org", "password": PASSWORD}
        )
        assert response.status == 201
        member = (await response.json())["member"]
        assert member["status"] == "pending" and not member["is_admin"]
        await client.post("/api/login", json={"email": "first@example.org", "password": PASSWORD})
        assert (await client.get("/api/admin/members")).status == 403


async def test_the_setup_link_makes_one_administrator_once_and_a_restart_makes_a_new_link(
    tmp_path: Path,
) -> None:
    config = Config(data_dir=tmp_path, media_workers=1)

    async def start() -> tuple[TestServer, TestClient]:
        server = TestServer(api_only_app(config, cheap_passwords()))
        client = TestClient(server)
        await client.start_server()
        return server, client

    server, client = await start()
    first_token = server.app[AppContext.KEY].setup_token
    assert first_token
    await client.close()

    # Still no administrator after a restart: a new link, and the old one no longer works.
    server, client = await start()
    token = server.app[AppContext.KEY].setup_token
    assert token and token != first_token
    for wrong in (first_token, token + "x", "", 42):
        response = await client.post("/api/setup", json=setup_body(wrong))
        assert response.status in (400, 403), wrong
        assert await error_code(response) in ("bad_setup_token", "missing_field"), wrong
    # Only a hash of the token is stored.
    with sqlite3.connect(config.database_path) as db:
        stored = [row[0] for row in db.execute("SELECT token_hash FROM setup_tokens")]
    assert len(stored) == 1 and token not in stored[0]

    response = await client.post("/api/setup", json=setup_body(token))
    assert response.status == 201, await response.text()
    assert (await response.json())["member"]["is_admin"]
    me = await (await client.get("/api/me")).json()  # signed in by the setup itself
    assert me["member"]["email"] == "chief@example.org" and me["member"]["status"] == "approved"
    assert (await client.get("/api/admin/members")).status == 200
    # Used up: the same link cannot make a second administrator.
    again = await client.post("/api/setup", json=setup_body(token, "second@example.org"))
    assert again.status == 403 and await error_code(again) == "bad_setup_token"
    await client.close()

    server, client = await start()  # an administrator exists: no link any more
    assert server.app[AppContext.KEY].setup_token is None
    await client.close()


async def test_an_expired_setup_link_is_refused(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path, media_workers=1)
    async with TestServer(api_only_app(config, cheap_passwords())) as server, TestClient(server) as client:
        store = server.app[AppContext.KEY].store
        expired = await store.new_setup_token(valid_s=-1)
        response = await client.post("/api/setup", json=setup_body(expired))
        assert response.status == 403 and await error_code(response) == "bad_setup_token"


def run_cli(tmp_path: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BABELCALL_DATA_DIR": str(tmp_path)}
    env.pop("BABELCALL_PASSWORD", None)
    if password is not None:
        env["BABELCALL_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "server", "admin", "create", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


async def test_babelcall_admin_create_for_scripted_installs(tmp_path: Path) -> None:
    created = run_cli(tmp_path, "--email", "Ops@Example.org", "--name", "Ops Team", password=PASSWORD)
    assert created.returncode == 0, created.stderr
    assert PASSWORD not in created.stdout + created.stderr
    # Refusals say why, with no traceback.
    for args, password, message in (
        (("--email", "ops@example.org", "--name", "Again"), PASSWORD, "is a member already"),
        (("--email", "b@example.org", "--name", "B"), None, "BABELCALL_PASSWORD"),
        (("--email", "b@example.org", "--name", "B"), "short", "10+ characters"),
        (("--email", "not-an-email", "--name", "B"), PASSWORD, "--email: is not an email address"),
        (("--email", "b@example.org", "--name", "Dr \u202eB"), PASSWORD, "--name: contains"),
    ):
        refused = run_cli(tmp_path, *args, password=password)
        assert refused.returncode != 0 and message in refused.stderr, (args, refused.stderr)
        assert "Traceback" not in refused.stderr

    config = Config(data_dir=tmp_path, media_workers=1)
    async with TestServer(api_only_app(config, cheap_passwords())) as server, TestClient(server) as client:
        assert server.app[AppContext.KEY].setup_token is None  # an administrator exists: no setup link
        response = await client.post("/api/login", json={"email": "ops@example.org", "password": PASSWORD})
        assert response.status == 200 and (await response.json())["member"]["is_admin"]


@pytest.mark.slow
@pytest.mark.browser
async def test_a_newcomer_opens_the_printed_link_and_lands_signed_in(
    tmp_path: Path, whisper_model_path: Path
) -> None:
    """What README's first command leads to: `serve` prints the link, the browser creates the
    administrator on web/setup.html and arrives on the main page signed in."""
    from conftest import require_browser
    from playwright.async_api import async_playwright

    chromium = require_browser()
    server = start_server(tmp_path, whisper_model_path, with_admin=False)
    try:
        (link,) = server.setup_links()
        assert link.startswith(server.base_url + "/setup#")
        assert link.split("#")[1] not in (tmp_path / "babelcall.sqlite3").read_bytes().decode(
            errors="replace"
        )
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = await browser.new_page()
            page.set_default_timeout(30_000)
            await page.goto(link)
            assert "#" not in page.url  # the token leaves the address bar (and the history) at once
            await page.fill("#setup input[name=name]", "Dr Amal Haddad")
            await page.fill("#setup input[name=email]", "amal@example.org")
            await page.fill("#setup input[name=password]", HARNESS_PASSWORD)
            await page.click("#setup button[type=submit]")
            await page.wait_for_url(server.base_url + "/")
            await page.wait_for_selector("#lobby:not([hidden])")
            assert "Dr Amal Haddad" in await page.inner_text("#account-name")
            # The same link again: refused, and the page says what to do.
            await page.goto(link)
            await page.fill("#setup input[name=name]", "Someone Else")
            await page.fill("#setup input[name=email]", "else@example.org")
            await page.fill("#setup input[name=password]", HARNESS_PASSWORD)
            await page.click("#setup button[type=submit]")
            await page.wait_for_selector("#no-link:not([hidden])")
            assert "restart the server" in await page.inner_text("#notice")
            await browser.close()
    finally:
        stop_server(server)
