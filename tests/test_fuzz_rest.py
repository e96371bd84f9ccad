"""Property-based tests: generated bodies thrown at every REST endpoint that takes one.

Random JSON values, bodies shaped like each endpoint's with every field of a random type, hostile
text, deep nesting, huge numbers, random bytes and wrong content types. Whatever arrives, the server
answers with a client error or success, never a 5xx or `internal_error`, and logs no error and no
traceback. A few thousand cases, bounded: hypothesis' max_examples per test.

The server runs on its own event loop in a thread, so hypothesis drives plain synchronous requests.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_app import PASSWORD, api_only_app, cheap_passwords

from protocol import LANGUAGES
from server.config import Config
from server.context import AppContext

BOUNDED = settings(
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class _Problems(logging.Handler):
    """Every log record at ERROR or with a traceback, from the server's thread too."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


@dataclass
class LiveServer:
    port: int
    admin_cookie: str
    room_id: str
    problems: _Problems
    _connection: http.client.HTTPConnection | None = field(default=None, repr=False)

    def request(
        self, method: str, path: str, body: bytes, content_type: str | None, *, signed_in: bool
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": content_type} if content_type is not None else {}
        if signed_in:
            headers["Cookie"] = self.admin_cookie
        for attempt in range(2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                # The server may close a connection after refusing a body it did not read.
                self._connection.close()
                self._connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    config = Config(
        data_dir=tmp_path_factory.mktemp("fuzz"),
        media_workers=1,
        # Thousands of sign-ins and applications from one address: the limits have their own tests.
        signin_failures_per_email=0,
        signin_failures_per_address=0,
        applications_per_address=0,
    )
    app = api_only_app(config, cheap_passwords())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzzed-server", daemon=True)
    thread.start()

    def on_loop(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=120)

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    runner, port = on_loop(start())
    problems = _Problems()
    logging.getLogger().addHandler(problems)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        token = app[AppContext.KEY].setup_token
        body = {"token": token, "name": "Admin", "email": "admin@example.org", "password": PASSWORD}
        connection.request("POST", "/api/setup", json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        assert response.status == 201
        cookie = response.headers["Set-Cookie"].split(";")[0]
        headers = {"Content-Type": "application/json", "Cookie": cookie}
        connection.request("POST", "/api/rooms", "{}", headers)
        response = connection.getresponse()
        room_id = json.loads(response.read())["room"]["id"]
        connection.close()
        yield LiveServer(port, cookie, room_id, problems)
    finally:
        logging.getLogger().removeHandler(problems)
        on_loop(runner.cleanup())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=60)
        loop.close()


# (method, path, needs the administrator's session). Logout is sent signed out so it cannot end the
# session the others use.
ENDPOINTS = {
    "apply": ("POST", "/api/apply", False),
    "login": ("POST", "/api/login", False),
    "setup": ("POST", "/api/setup", False),
    "logout": ("POST", "/api/logout", False),
    "rooms": ("POST", "/api/rooms", True),
    "glossary": ("PUT", "/api/rooms/{room}/glossary", True),
    "approve": ("POST", "/api/admin/members/someone/approve", True),
    "reject": ("POST", "/api/admin/members/someone/reject", True),
    "remove": ("DELETE", "/api/rooms/{room}/participants/someone", True),
}

HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "Dr \u202eleroM",
        "\u2066x\u2069",
        "\u200b",
        "\x1b[31mred",
        "a\r\nb",
        "\ud800",
        "\udfff\ud800",
        "x" * 5_000,
        "admin@example.org",
        PASSWORD,
        "consultation",
        "review",
    ]
)
TEXT = st.text(max_size=40) | st.text(st.characters(exclude_categories=()), max_size=20) | HOSTILE_TEXT
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
EMAILS = st.emails() | TEXT
LANGUAGE_CODES = st.sampled_from([*LANGUAGES, "xx", "", "EN"]) | TEXT
TERMS = st.lists(
    TEXT
    | st.fixed_dictionaries(
        {"term": TEXT | JSON_VALUES},
        optional={
            "renderings": st.dictionaries(LANGUAGE_CODES, TEXT | JSON_VALUES, max_size=3) | JSON_VALUES
        },
    )
    | JSON_VALUES,
    max_size=6,
)


def fields(**names: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object with any of these fields, each of its plausible kind or of any JSON type."""
    return st.fixed_dictionaries({}, optional={name: kind | JSON_VALUES for name, kind in names.items()})


SHAPED_BODIES = {
    "apply": fields(name=TEXT, email=EMAILS, password=TEXT, organisation=TEXT),
    "login": fields(email=EMAILS, password=TEXT),
    "setup": fields(token=TEXT, name=TEXT, email=EMAILS, password=TEXT, organisation=TEXT),
    "logout": fields(),
    "rooms": fields(kind=st.sampled_from(["consultation", "review", "other"]), title=TEXT),
    "glossary": fields(terms=TERMS),
    "approve": fields(),
    "reject": fields(),
    "remove": fields(),
}
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "",
        None,
    ]
)
RAW_BODIES = (
    st.binary(max_size=200)
    | st.integers(min_value=1, max_value=30_000).map(lambda depth: b"[" * depth + b"]" * depth)
    | st.integers(min_value=1, max_value=5_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth)
    | st.integers(min_value=30, max_value=6_000).map(lambda digits: b'{"email": ' + b"9" * digits + b"}")
    | st.integers(min_value=30, max_value=6_000).map(lambda digits: b'{"password": 1.' + b"5" * digits + b"}")
    | st.sampled_from(
        [b"", b"null", b"NaN", b'{"a": Infinity}', b"\xff\xfe{}", b'{"a": "\\ud800"}', b"{}" * 9]
    )
)


def check(server: LiveServer, endpoint: str, body: bytes, content_type: str | None) -> None:
    method, path, signed_in = ENDPOINTS[endpoint]
    problems_before = len(server.problems.records)
    status, answer = server.request(
        method, path.format(room=server.room_id), body, content_type, signed_in=signed_in
    )
    assert status < 500, (endpoint, status, answer[:200])
    if status >= 400:
        code = json.loads(answer)["error"]["code"]
        assert code != "internal_error", (endpoint, body[:200])
    logged = server.problems.records[problems_before:]
    assert not logged, [record.getMessage() for record in logged]


@settings(BOUNDED, max_examples=1_500)
@given(data=st.data())
def test_bodies_shaped_like_each_endpoints_with_fields_of_any_type(
    live_server: LiveServer, data: Any
) -> None:
    endpoint = data.draw(st.sampled_from(sorted(ENDPOINTS)))
    body = data.draw(SHAPED_BODIES[endpoint])
    check(live_server, endpoint, json.dumps(body).encode(), "application/json")


@settings(BOUNDED, max_examples=800)
@given(endpoint=st.sampled_from(sorted(ENDPOINTS)), body=RAW_BODIES, content_type=CONTENT_TYPES)
def test_raw_bytes_nesting_huge_numbers_and_wrong_content_types(
    live_server: LiveServer, endpoint: str, body: bytes, content_type: str | None
) -> None:
    check(live_server, endpoint, body, content_type)


@settings(BOUNDED, max_examples=500)
@given(endpoint=st.sampled_from(sorted(ENDPOINTS)), value=JSON_VALUES)
def test_any_json_value(live_server: LiveServer, endpoint: str, value: Any) -> None:
    check(live_server, endpoint, json.dumps(value).encode(), "application/json")


def test_the_fuzzed_server_still_works(live_server: LiveServer) -> None:
    """After everything above, an ordinary request is answered as usual."""
    status, answer = live_server.request("GET", "/api/me", b"", None, signed_in=True)
    assert status == 200 and json.loads(answer)["member"]["email"] == "admin@example.org"
