"""``sensorium duplicates``: list duplicate groups, show an asset's group, keep one copy, re-hash older assets."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from api.cli_output import EXIT_FAILED, fail, note

duplicates_app = typer.Typer(
    help="Find and clean up duplicate copies: exact (sha256), near (perceptual hashes), similar (vectors).",
    invoke_without_command=True,
)

_TIER = typer.Option(help="exact (same bytes), near (perceptual hashes) or similar (vector cosine).")


def _render(groups: list[Any]) -> None:
    if not groups:
        typer.echo("no duplicate groups")
        return
    for number, group in enumerate(groups, start=1):
        typer.echo(f"group {number} ({group.tier}, {len(group.members)} copies)")
        for member in group.members:
            size = f"{member['width']}x{member['height']}" if member["width"] else "-"
            label = "best" if member["distance"] is None else f"d={member['distance']:g}"
            variant = " (variant)" if member["variant_of"] else ""
            typer.echo(
                f"  {label:>8}  {size:>11}  {member['bytes']:>12,} B  {member['created_at'][:19]}  "
                f"tags {len(member['tags'])}  {member['id']}  {member['uri']}{variant}"
            )


@duplicates_app.callback()
def duplicates(
    ctx: typer.Context,
    tier: Annotated[str, _TIER] = "near",
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"groups": [...]} as JSON.')] = False,
) -> None:
    """List duplicate groups, best copy first (largest, then oldest, then most tagged)."""
    if ctx.invoked_subcommand is not None:
        return
    from index.duplicates.service import DuplicateError, find_groups

    try:
        groups = find_groups(tier, collection)
    except DuplicateError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"groups": [g.to_dict() for g in groups]}))
    else:
        _render(groups)


@duplicates_app.command("of")
def of_asset(
    asset_id: Annotated[str, typer.Argument(help="Asset id.")],
    tier: Annotated[str, _TIER] = "near",
    as_json: Annotated[bool, typer.Option("--json", help="Print the group as JSON (null when none).")] = False,
) -> None:
    """Show the group an asset belongs to."""
    from index.duplicates.service import DuplicateError, group_of

    try:
        group = group_of(asset_id, tier)
    except DuplicateError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(group.to_dict() if group else None))
    else:
        _render([group] if group else [])


@duplicates_app.command()
def keep(
    asset_id: Annotated[str, typer.Argument(help="The copy to keep.")],
    tier: Annotated[str, _TIER] = "near",
    merge_labels: Annotated[
        bool, typer.Option("--merge-labels", help="Give the kept copy the others' tags and collections.")
    ] = False,
    trash: Annotated[bool, typer.Option("--trash/--no-trash", help="Send the other copies to the trash.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was done as JSON.")] = False,
) -> None:
    """Keep one copy of its group: the others go to the trash (see `sensorium assets`) and/or give it their labels."""
    from index.duplicates.service import DuplicateError, act_on_group

    try:
        action = act_on_group(asset_id, trash_others=trash, merge_labels=merge_labels, tier=tier)
    except DuplicateError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(action.to_dict()))
        return
    typer.echo(f"kept {action.kept}; trashed {len(action.trashed)}; added: {', '.join(action.added_labels) or '-'}")


@duplicates_app.command()
def rehash() -> None:
    """Compute perceptual hashes for images and videos indexed before near-duplicate detection."""
    from index.duplicates.rehash import rehash as run_rehash

    summary = run_rehash(on_failure=lambda asset_id, reason: note(f"failed: {asset_id}: {reason}"))
    typer.echo(f"hashed {summary.hashed} assets ({summary.failed} failed)")
    if summary.failed:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add the ``duplicates`` command group to the ``sensorium`` app."""
    app.add_typer(duplicates_app, name="duplicates")
