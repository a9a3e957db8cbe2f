"""What every CLI command prints on failure and how it exits: one error line on stderr, a documented exit code."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from core.settings import Settings

EXIT_FAILED = 1  # the work ran and failed (a job failed or was canceled, a file could not be ingested)
EXIT_USAGE = 2  # the command was refused: bad arguments, settings or input
EXIT_STILL_RUNNING = 3  # a waited-for job had not ended when the command stopped waiting


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with ``code``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """Print a notice in yellow on stderr."""
    typer.secho(message, fg=typer.colors.YELLOW, err=True)


def print_ingest_summary(summary: dict[str, Any], as_json: bool) -> None:
    """Print an ingest summary (JSON or one line) and exit 1 when a file failed."""
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"indexed {summary['indexed']}, skipped {summary['skipped']}, failed {summary['failed']} "
            f"in {summary['elapsed_s']:.1f} s"
        )
    if summary["failed"]:
        raise typer.Exit(1)


def announce_weights(settings: Settings) -> None:
    """Say once, on stderr, that the encoder runs on random weights (the same words every door uses)."""
    from index.offline import random_weights_message, uses_random_weights

    if uses_random_weights(settings.encoder):
        note(f"warning: {random_weights_message(settings.encoder)}")
