"""The `babelcall` command: `serve` runs the server, `join` runs a headless participant, `admin create`
makes an administrator (for scripted installs; a new server's first start prints a setup link),
`models` and `records` manage translation models and consultation records.

`join` prints one caption event (protocol.CaptionEvent) per line as JSON on stdout; everything else
goes to stderr, so its output can be piped straight into other tools.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from protocol import LANGUAGES
from server import models_cli, record_cli


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from server.app import create_app
    from server.config import ConfigError, load_config
    from server.records import RecordKeyError

    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"babelcall: {error}", file=sys.stderr)
        return 2
    if args.host or args.port:
        import dataclasses

        config = dataclasses.replace(config, host=args.host or config.host, port=args.port or config.port)
    print(config.describe(), flush=True)
    try:
        tls = config.tls_context()
    except ConfigError as error:
        print(f"babelcall: {error}", file=sys.stderr)
        return 2
    _one_blas_thread()
    app = create_app(config)

    def announce(_: str) -> None:
        # run_app calls this once the port is bound (on_startup would run before: too early to connect).
        from server.context import AppContext

        setup_token = app[AppContext.KEY].setup_token
        if setup_token is not None:
            # On the console, never in the log: it makes whoever holds it this server's administrator.
            print(
                "No administrator yet. Open this one-time link to create the administrator's account "
                f"(valid for an hour; a restart prints a new one):\n\n    {config.url}setup#{setup_token}\n\n"
                "(or run `babelcall admin create`)",
                flush=True,
            )
        print(f"BabelCall is ready: {config.url}", flush=True)

    # On SIGTERM the calls are told and closed first (server/calls.py: Calls.shutdown); what is left
    # after that is handlers ending, so aiohttp's default minute of waiting for them is not needed.
    try:
        web.run_app(
            app,
            host=config.host,
            port=config.port,
            ssl_context=tls,
            print=announce,
            access_log=None,
            shutdown_timeout=1.0,
        )
    except RecordKeyError as error:
        print(f"babelcall: {error}", file=sys.stderr)
        return 2
    return 0


def _one_blas_thread() -> None:
    """numpy's OpenBLAS starts a pool of one thread per core that busy-waits after every matrix product.
    The server already runs every stream's log-mel features (small products) in parallel on its own
    threads, so that pool only burns cores: on a 16-core GPU host at 16 speakers its 15 threads took
    60-77% of a core each, starving the media and recognition threads. One BLAS thread per caller."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _join(args: argparse.Namespace) -> int:
    from participant import JoinError, join_room

    password = os.environ.get(args.password_env)
    if not password:
        print(f"babelcall join: set ${args.password_env} to the member's password", file=sys.stderr)
        return 2
    if not args.audio.is_file():
        print(f"babelcall join: no such audio file: {args.audio}", file=sys.stderr)
        return 2

    def print_caption(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        asyncio.run(
            join_room(
                args.room_url,
                email=args.email,
                password=password,
                audio=args.audio,
                speaks=args.speaks,
                captions=args.captions,
                linger_s=args.linger,
                on_caption=print_caption,
                ice_loopback=not args.no_loopback,
                receive_media=args.receive_media,
                video=args.video,
            )
        )
    except JoinError as error:
        print(f"babelcall join: {error}", file=sys.stderr)
        return 1
    return 0


def _admin_create(args: argparse.Namespace) -> int:
    from protocol.text import TextError, clean_text
    from server.api import MAX_NAME_CHARS, MAX_TEXT_CHARS, MIN_PASSWORD_CHARS, email_address
    from server.config import ConfigError, load_config
    from server.passwords import PasswordWork
    from server.store import EmailTakenError, MemberStatus, Store

    try:
        config = load_config(args.config)
        name = clean_text(args.name, field="--name", max_chars=MAX_NAME_CHARS)
        organisation = clean_text(
            args.organisation, field="--organisation", max_chars=MAX_TEXT_CHARS, required=False
        )
        email = email_address(args.email, field="--email")
    except (ConfigError, TextError) as error:
        print(f"babelcall admin create: {error}", file=sys.stderr)
        return 2
    password = os.environ.get(args.password_env)
    if not password:
        if not sys.stdin.isatty():
            print(
                f"babelcall admin create: set ${args.password_env} to the password, or run it in a terminal",
                file=sys.stderr,
            )
            return 2
        import getpass

        password = getpass.getpass("Password for the administrator: ")
        if getpass.getpass("The same again: ") != password:
            print("babelcall admin create: the passwords differ", file=sys.stderr)
            return 2
    if len(password) < MIN_PASSWORD_CHARS:
        print(f"babelcall admin create: the password needs {MIN_PASSWORD_CHARS}+ characters", file=sys.stderr)
        return 2

    async def create() -> str:
        store, passwords = Store(config.database_path), PasswordWork()
        await store.open()
        try:
            member = await store.create_member(
                email=email,
                name=name,
                organisation=organisation,
                password_hash=await passwords.hash(password),
                status=MemberStatus.APPROVED,
                is_admin=True,
            )
            return member.id
        finally:
            await passwords.close()
            await store.close()

    try:
        member_id = asyncio.run(create())
    except EmailTakenError:
        print(f"babelcall admin create: {email} is a member already", file=sys.stderr)
        return 1
    print(f"administrator {email} created (member {member_id}) in {config.database_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="babelcall", description="Real-time translated video consultations")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", type=Path, help="TOML configuration file (else $BABELCALL_CONFIG)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8080)")
    serve.set_defaults(run=_serve)

    codes = sorted(LANGUAGES)
    join = commands.add_parser(
        "join",
        help="join a room as a headless participant, speak an audio file, print captions as JSON lines",
    )
    join.add_argument("room_url", help="the room's link, e.g. http://127.0.0.1:8080/r/ROOM_ID")
    join.add_argument(
        "--audio", type=Path, required=True, help="audio file to speak (any format ffmpeg reads)"
    )
    join.add_argument("--email", required=True, help="an approved member's email")
    join.add_argument(
        "--password-env", default="BABELCALL_PASSWORD", help="environment variable holding the password"
    )
    join.add_argument("--speaks", choices=codes, required=True, help="language spoken in the audio file")
    join.add_argument("--captions", choices=codes, required=True, help="language to receive captions in")
    join.add_argument("--linger", type=float, default=5.0, help="seconds to stay after the file has played")
    join.add_argument("--no-loopback", action="store_true", help="do not offer 127.0.0.1 as an ICE candidate")
    join.add_argument("--video", action="store_true", help="also send a camera: a moving test pattern")
    join.add_argument(
        "--receive-media",
        action="store_true",
        help="subscribe to the others' audio and video as a browser does (received, counted, dropped)",
    )
    join.set_defaults(run=_join)

    admin = commands.add_parser("admin", help="manage administrators")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_commands.add_parser(
        "create", help="make an approved administrator (the password from $BABELCALL_PASSWORD, else asked)"
    )
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--organisation", default="")
    create.add_argument(
        "--password-env", default="BABELCALL_PASSWORD", help="environment variable holding the password"
    )
    create.add_argument("--config", type=Path, help="TOML configuration file (else $BABELCALL_CONFIG)")
    create.set_defaults(run=_admin_create)
    models_cli.add_parser(commands)
    record_cli.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # aiortc/aioice are chatty at INFO about every candidate pair.
        for noisy in ("aioice", "aiortc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "models" and getattr(args, "models_dir", None) is None:
        # The directory `serve` would load from, config file ($BABELCALL_CONFIG) and variables included.
        from server.config import ConfigError, load_config

        try:
            args.models_dir = load_config().translation_dir
        except ConfigError as exc:
            print(f"babelcall: {exc}", file=sys.stderr)
            return 2
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
