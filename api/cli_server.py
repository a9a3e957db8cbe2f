"""CLI commands for the REST server: ``sensorium serve`` and ``sensorium keys create|list|revoke``."""

from __future__ import annotations

import json
import logging
import os
from enum import StrEnum
from typing import Annotated

import typer

from api.cli_help import HELP_OPTIONS, example
from api.cli_output import fail


class Scope(StrEnum):
    """API key scopes (an Enum so that help lists them)."""

    search = "search"
    generate = "generate"
    ingest = "ingest"
    admin = "admin"


keys_app = typer.Typer(
    help="Create, list and revoke API keys.",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
    epilog=example("sensorium keys list"),
)


def serve(
    host: Annotated[str, typer.Option(help="Address to bind (use 0.0.0.0 to accept other machines).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes.")] = 1,
    fd: Annotated[
        int | None, typer.Option(min=0, help="Serve on this inherited, already listening socket instead of --port.")
    ] = None,
) -> None:
    """Run the REST API (OpenAPI docs at /schema)."""
    # Request threads each get their own OpenMP team for torch; spinning idle teams (the default policy) eat the
    # CPU the other requests need: 300 ms instead of 20 ms per text search on 2 busy cores. Must precede torch.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import uvicorn

    from api.rest.auth import is_loopback
    from api.rest.server import uvicorn_limits
    from core.logs import logging_config
    from core.settings import get_settings

    settings = get_settings()
    if settings.auth.disabled and not is_loopback(host):
        fail(
            f"SENSORIUM_AUTH__DISABLED is set, which is only allowed on a loopback address, not {host}; "
            "unset it and create a key with `sensorium keys create`"
        )
    if not settings.auth.disabled:
        from core.apikeys import list_keys

        if not any(not k.revoked for k in list_keys(settings)):
            typer.secho(
                "note: no API keys yet; create one with `sensorium keys create --name NAME --scope admin`",
                fg=typer.colors.YELLOW,
                err=True,
            )
    # uvicorn applies this in every server process (JSON or text lines on stderr, access lines included).
    log_config = logging_config(settings.log_format, logging.getLogger().level)
    where = f"inherited socket {fd}" if fd is not None else f"http://{host}:{port}"
    typer.echo(f"Sensorium API on {where} (docs: /schema)", err=True)
    if workers > 1:
        # Each worker process builds its own app (and its own index) through the factory.
        uvicorn.run(
            "api.rest.app:create_app",
            factory=True,
            host=host,
            port=port,
            fd=fd,
            workers=workers,
            access_log=False,
            log_config=log_config,
            **uvicorn_limits(settings),
        )
    else:
        from api.rest.app import create_app

        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            fd=fd,
            access_log=False,
            log_config=log_config,
            **uvicorn_limits(settings),
        )


@keys_app.command("create", epilog=example("sensorium keys create --name laptop --scope search --scope ingest"))
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key (who or what uses it).")],
    scope: Annotated[list[Scope], typer.Option("--scope", "-s", help="What the key may do (repeatable).")],
    as_json: Annotated[bool, typer.Option("--json", help='Print {"id", "name", "scopes", "secret"}.')] = False,
) -> None:
    """Create an API key and print its secret (shown only this once)."""
    from core.apikeys import UnknownScope, create_key

    try:
        created = create_key(name, [s.value for s in scope])
    except (UnknownScope, ValueError) as exc:
        fail(str(exc))
    info = created.info
    if as_json:
        typer.echo(
            json.dumps({"id": info.id, "name": info.name, "scopes": list(info.scopes), "secret": created.secret})
        )
        return
    typer.echo(f"created key {info.id} ({info.name}; scopes: {', '.join(info.scopes)})")
    typer.echo(f"secret (shown once, store it now): {created.secret}")


@keys_app.command("list", epilog=example("sensorium keys list --json"))
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List API keys (never their secrets)."""
    from core.apikeys import list_keys

    keys = list_keys()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "keys": [
                        {
                            "id": k.id,
                            "name": k.name,
                            "scopes": list(k.scopes),
                            "created_at": k.created_at.isoformat(),
                            "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                            "revoked": k.revoked,
                        }
                        for k in keys
                    ]
                }
            )
        )
        return
    if not keys:
        typer.echo("no API keys")
    for k in keys:
        state = "revoked" if k.revoked else "active"
        used = k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "never"
        typer.echo(f"{k.id}  {state:<7}  {','.join(k.scopes):<28}  last used {used}  {k.name}")


@keys_app.command("revoke", epilog=example("sensorium keys revoke 7c1e..."))
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (from `keys list`).")]) -> None:
    """Revoke an API key; requests with it get 401 from now on."""
    from core.apikeys import KeyNotFound, revoke_key

    try:
        info = revoke_key(key_id)
    except KeyNotFound as exc:
        fail(str(exc))
    typer.echo(f"revoked key {info.id} ({info.name})")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``keys`` to the ``sensorium`` CLI."""
    app.command("serve", epilog=example("sensorium serve --host 0.0.0.0 --port 8000"))(serve)
    app.add_typer(keys_app, name="keys")
