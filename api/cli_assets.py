"""`sensorium assets ...`, `sensorium gc` and `sensorium migrate`: parse, call a service, render."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from api.cli_output import EXIT_FAILED, fail, note

if TYPE_CHECKING:
    from core.db.models import Asset

assets_app = typer.Typer(help="List, label, trash and restore assets.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def asset_json(asset: Asset) -> dict[str, Any]:
    """Return the CLI's JSON view of an asset (times in ISO 8601 with their UTC offset)."""
    return {
        "asset_id": asset.id,
        "name": asset.name,
        "kind": asset.kind,
        "source": asset.source,
        "status": asset.status,
        "collections": asset.collections,
        "tags": asset.tags,
        "uri": asset.uri or asset.blob_key,
        "locations": [
            {"path": loc.path, "blob_key": loc.blob_key, "needs_scan": loc.needs_scan} for loc in asset.locations
        ],
        "sha256": asset.sha256,
        "bytes": asset.bytes,
        "mime": asset.mime,
        "created_at": asset.created_at.isoformat(),
        "updated_at": asset.updated_at.isoformat(),
        "trashed_at": asset.trashed_at.isoformat() if asset.trashed_at else None,
    }


def _print(assets: Sequence[Asset], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([asset_json(a) for a in assets], indent=2))
        return
    for asset in assets:
        trashed = "  [trash]" if asset.trashed_at else ""
        labels = ", ".join([*asset.collections, *(f"#{t}" for t in asset.tags)])
        typer.echo(f"{asset.id}  {asset.kind:5}  {asset.name}  ({labels}){trashed}")


def _settings() -> Any:
    from core.settings import get_settings

    return get_settings()


def _run(action: Callable[[], Sequence[Asset]], as_json: bool) -> None:
    from index.services.assets import AssetNotFound

    try:
        changed = action()
    except AssetNotFound as exc:
        fail(str(exc))
    _print(changed, as_json)


@assets_app.command("list")
def list_command(
    kind: Annotated[str | None, typer.Option(help="image, audio or video.")] = None,
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Required tag (repeatable).")] = None,
    source: Annotated[str | None, typer.Option(help="ingested, uploaded or generated.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, indexed or failed.")] = None,
    trash: Annotated[bool, typer.Option("--trash", help="List the trash instead.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """List assets, newest first."""
    from index.services.assets import AssetFilters, list_assets

    filters = AssetFilters(kind, collection, list(tag or []), source, status, trash=trash)
    _print(list_assets(_settings(), filters, limit), as_json)


@assets_app.command("show")
def show_command(asset_id: str) -> None:
    """Show one asset with its locations, as JSON."""
    from index.services.assets import AssetNotFound, get_asset

    try:
        asset = get_asset(_settings(), asset_id)
    except AssetNotFound as exc:
        fail(str(exc))
    typer.echo(json.dumps(asset_json(asset), indent=2))


def _split(words: list[str], names: str) -> tuple[list[str], list[str]]:
    """Split ``ID... LABEL...``: ids come first; the last word at least is a label."""
    from index.services.assets import known_ids

    ids = known_ids(_settings(), words[:-1])
    if not ids:
        fail(f"give one or more asset ids, then one or more {names}")
    return words[: len(ids)], words[len(ids) :]


Words = Annotated[list[str], typer.Argument(help="Asset ids, then labels.")]


def _relabel_command(name: str, labels: str, change: str, doc: str) -> None:
    def command(words: Words, as_json: JsonOption = False) -> None:
        from index.services.assets import relabel

        ids, names = _split(words, labels)
        _run(lambda: relabel(_settings(), ids, **{change: names}), as_json)

    command.__doc__ = doc
    assets_app.command(name)(command)


for _name, _labels, _change, _doc in [
    ("tag", "tags", "add_tags", "Add tags: `assets tag ID... TAG...`."),
    ("untag", "tags", "remove_tags", "Remove tags: `assets untag ID... TAG...`."),
    ("collect", "collections", "add_collections", "Add to collections: `assets collect ID... COLLECTION...`."),
    ("uncollect", "collections", "remove_collections", "Remove from collections: `assets uncollect ID... NAME...`."),
]:
    _relabel_command(_name, _labels, _change, _doc)


@assets_app.command("rm")
def rm_command(ids: list[str], as_json: JsonOption = False) -> None:
    """Move assets to the trash (hidden from search; purged after assets.trash_days)."""
    from index.services.assets import trash_assets

    _run(lambda: trash_assets(_settings(), ids), as_json)


@assets_app.command("restore")
def restore_command(ids: list[str], as_json: JsonOption = False) -> None:
    """Bring assets back from the trash."""
    from index.services.assets import restore_assets

    _run(lambda: restore_assets(_settings(), ids), as_json)


@assets_app.command("purge")
def purge_command(
    older_than_days: Annotated[
        float | None, typer.Option(min=0, help="Purge what was trashed this long ago (default: the setting).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Delete trashed assets for good, with their files once nothing references them."""
    from index.services.storage import purge_trash

    summary = purge_trash(_settings(), older_than_days)
    _summary(summary.assets, summary.files, summary.bytes, as_json)


def gc(as_json: JsonOption = False) -> None:
    """Purge the expired trash and delete blob and thumbnail files no asset references (spares young ones)."""
    from index.services.storage import collect_garbage

    summary = collect_garbage(_settings())
    _summary(summary.assets, summary.files, summary.bytes, as_json)


def _summary(assets: int, files: int, size: int, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"purged_assets": assets, "deleted_files": files, "deleted_bytes": size}))
    else:
        typer.echo(f"purged {assets} asset(s); deleted {files} file(s), {size:,} bytes")


def migrate(
    backup: Annotated[Path | None, typer.Option(help="SQLite: copy the database here first.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Merge duplicates without asking.")] = False,
) -> None:
    """Upgrade the database schema; merges the duplicate assets older releases made (back up first)."""
    from index.services.schema import SchemaTooNew, backup_advice, backup_sqlite, migrate, schema_state

    settings = _settings()
    state = schema_state(settings)
    typer.echo(f"schema: {state.revision or 'empty'} -> {state.head}; duplicate assets to merge: {state.duplicates}")
    if state.current:
        typer.echo("nothing to do")
        return
    if backup is not None:
        try:
            typer.echo(f"backed up to {backup_sqlite(settings, backup)}")
        except (ValueError, OSError) as exc:
            fail(str(exc))
    elif state.duplicates:
        note(backup_advice(state, settings))
        if not yes and not typer.confirm("Merge the duplicates now?", default=False):
            fail("not migrated", EXIT_FAILED)
    try:
        after = migrate(settings)
    except SchemaTooNew as exc:
        fail(str(exc))
    typer.echo(f"schema now at {after.revision}; merged {state.duplicates} duplicate asset(s)")


def register(app: typer.Typer) -> None:
    """Add `assets`, `gc` and `migrate` to the CLI."""
    app.add_typer(assets_app, name="assets")
    app.command("gc")(gc)
    app.command("migrate")(migrate)
