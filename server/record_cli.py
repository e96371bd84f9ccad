"""`babelcall records list | export | delete`: consultation records for operators on the server's host.

It opens the server's database and record key (the same configuration as `serve`), so it works
beside a running server. Every export and deletion is written to the audit log as done by `cli`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from protocol import LANGUAGES, Glossary
from server.config import Config, ConfigError, load_config
from server.record_export import ExportFormat, render, translate_lines
from server.records import BY_CLI, AuditEvent, RecordKeeper, RecordKeyError, load_record_cipher
from server.store import Store, StoredRecord


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    records = commands.add_parser("records", help="consultation records: list, export or delete them")
    records.add_argument("--config", type=Path, help="TOML configuration file (else $BABELCALL_CONFIG)")
    actions = records.add_subparsers(dest="records_command", required=True)
    listing = actions.add_parser("list", help="every record: id, room, when, lines, when it expires")
    listing.add_argument("--json", action="store_true", help="one JSON object per record")
    export = actions.add_parser("export", help="write a record as a file, translated if asked")
    export.add_argument("record_id")
    export.add_argument("--format", choices=[f.value for f in ExportFormat], required=True)
    export.add_argument(
        "--language", choices=sorted(LANGUAGES), help="translate into this language (html needs one)"
    )
    export.add_argument(
        "--output", type=Path, help="file to write (made readable by its owner only); else stdout"
    )
    delete = actions.add_parser("delete", help="delete a record now")
    delete.add_argument("record_id")
    records.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"babelcall records: {error}", file=sys.stderr)
        return 2
    if args.records_command == "export" and args.format == "html" and args.language is None:
        print("babelcall records: the bilingual html document needs --language", file=sys.stderr)
        return 2
    if not config.database_path.exists():
        print(f"babelcall records: no database at {config.database_path}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_run(args, config))
    except RecordKeyError as error:
        print(f"babelcall records: {error}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace, config: Config) -> int:
    store = Store(config.database_path)
    await store.open()
    try:
        keeper = RecordKeeper(
            store,
            await load_record_cipher(config.record_key_path, store),
            retention_days=config.record_retention_days,
        )
        if args.records_command == "list":
            for record in await keeper.all_records():
                _print_record(record, keeper.expires_at(record), as_json=args.json)
            return 0
        record = await keeper.record(args.record_id)
        if record is None:
            print(f"babelcall records: no record {args.record_id}", file=sys.stderr)
            return 1
        if args.records_command == "delete":
            await keeper.delete(record, BY_CLI)
            print(f"deleted record {record.id}", file=sys.stderr)
            return 0
        export_format = ExportFormat(args.format)
        lines = await keeper.read(
            record, BY_CLI, AuditEvent.EXPORTED, f"{export_format.value} {args.language or 'original'}"
        )
        if args.language is None:
            translated = await translate_lines(lines, None, None, Glossary())
        else:
            from server.app import load_engine  # the models: only for an export that is translated

            engine = await asyncio.to_thread(load_engine, config)
            try:
                room = await store.room(record.room_id)
                glossary = room.glossary if room is not None else Glossary()
                translated = await translate_lines(lines, args.language, engine, glossary)
            finally:
                await engine.aclose()
        _write(render(export_format, record, translated, args.language), args.output)
        return 0
    finally:
        await store.close()


def _print_record(record: StoredRecord, expires_at: float, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**record.public(), "expires_at": expires_at}, ensure_ascii=False))
        return

    def utc(timestamp: float | None) -> str:
        return (
            "running"
            if timestamp is None
            else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")
        )

    print(
        f"{record.id}  {utc(record.started_at)} → {utc(record.ended_at)}  {record.lines:4d} lines  "
        f"expires {utc(expires_at)}  {record.room_title}"
    )


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    # The words of a consultation: readable by the operator who exported them, nobody else.
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
