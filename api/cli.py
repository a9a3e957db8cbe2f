"""The ``sensorium`` command line: ingest, search, reindex, demo (heavy imports happen inside commands)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli_output import fail

app = typer.Typer(help="Sensorium: multimodal search and generation over your media library.", no_args_is_help=True)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Return the exception types that are the user's to fix (printed as a message, not a traceback)."""
    from index.encoders import EncoderWeightsUnavailable
    from index.library import ModelMismatchError
    from index.search import SearchError

    return (EncoderWeightsUnavailable, ModelMismatchError, SearchError, PermissionError, FileNotFoundError)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        logging.getLogger().setLevel(logging.ERROR)  # open_clip warns on every random-weight build


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False) -> None:
    _configure_logging(verbose)
    from pydantic import ValidationError

    from core.settings import get_settings

    try:
        get_settings()
    except ValidationError as exc:  # a bad SENSORIUM_* variable: say which, not a traceback
        fail(f"invalid setting: {exc}")


@app.command()
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (recursive).")] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help='JSONL file, one {"path", "collection"?, "tags"?, "metadata"?} per line; '
            "relative paths are taken from its folder."
        ),
    ] = None,
    collection: Annotated[
        str, typer.Option(help="Collection the assets join (manifest lines may say otherwise).")
    ] = "default",
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="Tag to add (repeatable).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="Decoding threads.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    distributed: Annotated[
        bool, typer.Option("--distributed", help="Fan out in chunks to the workers of the `ingest` queue.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="With --distributed: follow the job until it ends.")
    ] = True,
    chunk_size: Annotated[
        int | None, typer.Option(min=1, max=100_000, help="With --distributed: files per chunk.")
    ] = None,
    near_duplicates: Annotated[
        str | None,
        typer.Option(
            "--near-duplicates",
            help="index (record the group), skip (leave near copies out, listed by name) or link "
            "(index as a hidden variant of the group's best copy). Default: SENSORIUM_DUPLICATES__INGEST_POLICY.",
        ),
    ] = None,
) -> None:
    """Index media files in place; re-running skips what is already indexed and finishes an interrupted run."""
    from collections.abc import Iterator

    from api.progress import IngestProgress
    from core.settings import get_settings
    from index.duplicates.policy import NEAR_COPY, POLICIES
    from index.encoders import get_encoder
    from index.ingest.discover import Candidate, Rejected, discover, label_problem
    from index.ingest.manifest import read_manifest
    from index.ingest.pipeline import ingest as run_ingest
    from index.ingest.prepared import Outcome
    from index.service import get_live_index

    if not paths and manifest is None:
        fail("give files or folders to ingest, or --manifest FILE")
    if near_duplicates is not None and near_duplicates not in POLICIES:
        fail(f"unknown --near-duplicates {near_duplicates!r}: use {', '.join(POLICIES)}")
    problem = label_problem(collection, tag or [])
    if problem:
        fail(problem)
    if distributed and near_duplicates not in (None, "index"):
        fail("--near-duplicates skip and link need a local ingest (not --distributed)")
    if distributed:
        from api.cli_distributed import run_distributed

        run_distributed(paths or [], manifest, collection, tag or [], chunk_size, follow, as_json)
        return
    settings = get_settings()
    if workers:
        settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"workers": workers})})
    roots = settings.ingest.allowed_roots if settings.ingest.allowed_roots is not None else [Path.cwd()]

    def inputs() -> Iterator[Candidate | Rejected]:
        if manifest is not None:
            yield from read_manifest(manifest, roots, collection, tag or [])
        yield from discover(paths or [], roots, collection, tag or [])

    near_copies: list[Outcome] = []
    try:
        if manifest is not None:
            read_manifest(manifest, roots)  # refuse an unusable manifest before starting
        get_encoder(settings.encoder)  # load the model first: the progress clock then measures the files alone
        with IngestProgress(enabled=not as_json) as progress:
            progress.count_in_background(inputs())  # a second, cheap walk: the ETA appears once it is done
            def on_progress(outcome: Outcome) -> None:
                if outcome.reason and outcome.reason.startswith(NEAR_COPY):
                    near_copies.append(outcome)
                progress.update(outcome)

            summary = run_ingest(
                inputs(), settings, on_progress=on_progress, keep_outcomes=False, near_duplicates=near_duplicates
            )
        index = get_live_index(settings)
        if index.rebuilding:
            if not as_json:
                typer.echo(f"building the vector index for {len(index):,} vectors...", err=True)
            index.wait_for_rebuild()
        index.save()  # the next process starts from a fresh snapshot
    except KeyboardInterrupt:
        typer.secho(
            "interrupted: everything committed so far stays indexed; run the same command again to finish",
            fg=typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(130) from None
    except _user_errors() as exc:
        fail(str(exc))
    if as_json:
        failures = [{"path": o.path, "reason": o.reason} for o in summary.failures]
        summary_json = {
            "indexed": summary.indexed,
            "skipped": summary.skipped,
            "failed": summary.failed,
            "elapsed_s": round(summary.elapsed_s, 3),
            "failures": failures,
            "near_duplicates_skipped": [{"path": o.path, "reason": o.reason} for o in near_copies],
        }
        typer.echo(json.dumps(summary_json))
    else:
        for outcome in near_copies:
            typer.echo(f"skipped {outcome.path}: {outcome.reason}")
        typer.echo(
            f"indexed {summary.indexed}, skipped {summary.skipped}, failed {summary.failed} "
            f"in {summary.elapsed_s:.1f} s"
        )
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def search(
    text: Annotated[str | None, typer.Argument(help="Text query.")] = None,
    image: Annotated[Path | None, typer.Option(help="Query by an image file.")] = None,
    audio: Annotated[Path | None, typer.Option(help="Query by an audio clip (finds similar sounds).")] = None,
    like: Annotated[str | None, typer.Option(help="Query by an existing asset id (more like this).")] = None,
    mode: Annotated[str, typer.Option(help="For text: vector, text (full-text) or hybrid (both, fused).")] = "hybrid",
    kind: Annotated[list[str] | None, typer.Option(help="image, audio or video (repeatable).")] = None,
    collection: Annotated[list[str] | None, typer.Option(help="Collection (repeatable).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="Required tag (repeatable).")] = None,
    min_score: Annotated[float | None, typer.Option(help="Drop results scoring below this cosine.")] = None,
    k: Annotated[int, typer.Option("-k", "--limit", min=1, max=1000, help="Results per page.")] = 10,
    offset: Annotated[int, typer.Option(min=0, help="Results to skip.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"results": [...]} as JSON.')] = False,
) -> None:
    """Search the library by text, by image or audio clip, or by example asset."""
    from index.search import SearchFilters, SearchRequest
    from index.search import search as run_search

    for label, path in (("image", image), ("audio", audio)):
        if path is not None and not path.is_file():
            fail(f"query {label} not found: {path}")
    request = SearchRequest(
        text=text,
        image=image.read_bytes() if image is not None else None,
        audio=audio,
        asset_id=like,
        mode=mode,
        filters=SearchFilters(kinds=kind or [], collections=collection or [], tags=tag or []),
        min_score=min_score,
        limit=k,
        offset=offset,
    )
    _validate_kinds(kind or [])
    try:
        results = run_search(request)
    except _user_errors() as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"results": [r.to_dict() for r in results]}))
        return
    from api.render import print_results

    print_results(results)


def _validate_kinds(kinds: list[str]) -> None:
    unknown = sorted(set(kinds) - {"image", "audio", "video"})
    if unknown:
        fail(f"unknown kind {', '.join(unknown)}: use image, audio or video")


def _report_reembed_failure(asset_id: str, error: str | None) -> None:
    if error:
        typer.secho(f"failed: {asset_id}: {error}", fg=typer.colors.YELLOW, err=True)


@app.command()
def reindex(
    reembed: Annotated[
        bool, typer.Option("--reembed", help="Re-encode every asset with the configured model.")
    ] = False,
) -> None:
    """Rebuild the index snapshot from stored vectors (or re-encode everything with --reembed)."""
    from index import reindex as reindexing

    try:
        if reembed:
            summary = reindexing.reembed(on_asset=_report_reembed_failure)
            typer.echo(
                f"re-embedded {summary.reembedded} assets ({summary.failed} failed); index holds {summary.vectors} vectors"
            )
            if summary.failed:
                raise typer.Exit(1)
        else:
            typer.echo(f"index rebuilt: {reindexing.rebuild_snapshot()} vectors")
    except _user_errors() as exc:
        fail(str(exc))


@app.command()
def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the demo library goes (default: <data dir>/demo).")
    ] = None,
) -> None:
    """Build a small sample library, ingest it, and show searches by text, image and example."""
    from api.demo import run_demo

    try:
        run_demo(data_dir)
    except _user_errors() as exc:
        fail(str(exc))


# Command groups live in their own modules (each keeps heavy imports inside its commands).
from api.cli_agent import register as _register_agent  # noqa: E402
from api.cli_duplicates import register as _register_duplicates  # noqa: E402
from api.cli_jobs import register as _register_jobs  # noqa: E402
from api.cli_server import register as _register_server  # noqa: E402

for _register in (_register_jobs, _register_server, _register_agent, _register_duplicates):
    _register(app)


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI (console-script entry point)."""
    return app(args=argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
