"""What every CLI command prints on failure and how it exits: one error line on stderr, a documented exit code."""

from __future__ import annotations

from typing import NoReturn

import typer

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
