"""The ``sensorium`` command line: ingest, search, reindex, demo (heavy imports happen inside commands)."""

from __future__ import annotations

import json
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from api.cli_help import HELP_OPTIONS, example, humanize
from api.cli_output import announce_weights, fail, note, print_ingest_summary

if TYPE_CHECKING:
    from pydantic import ValidationError

if TYPE_CHECKING:
    pass

app = typer.Typer(
    help="Sensorium: multimodal search and generation over your media library.",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
    epilog=example('sensorium ingest ~/Pictures && sensorium search "a red car"'),
)
Mode = Literal["vector", "text", "hybrid"]


class Kind(StrEnum):
    """The kinds of media (an Enum: typer lists its values as the choices of a repeatable option)."""

    image = "image"
    audio = "audio"
    video = "video"


def _user_errors() -> tuple[type[BaseException], ...]:
    """Return the exception types that are the user's to fix (printed as a message, not a traceback)."""
    from index.encoders import EncoderWeightsUnavailable
    from index.library import ModelMismatchError
    from index.search import SearchError

    return (EncoderWeightsUnavailable, ModelMismatchError, SearchError, PermissionError, FileNotFoundError)


class _QuietLibraries(logging.Filter):
    """Drop open_clip's own ERROR line about missing weights: the refusal that follows says it once, with the fix."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "open_clip" not in record.pathname


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.captureWarnings(True)  # library warnings (torch, diffusers) go to the log, shown with --verbose
    if not verbose:
        logging.getLogger().setLevel(logging.ERROR)  # open_clip warns on every random-weight build
        for handler in logging.getLogger().handlers:
            handler.addFilter(_QuietLibraries())


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"sensorium {version('sensorium')}")
        raise typer.Exit()


def _setting_problems(exc: ValidationError) -> str:
    errors = exc.errors()
    lines = [f"SENSORIUM_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in errors]
    return "; ".join(lines) or str(exc)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="URL",
            help="Client mode: send search, ingest, generate, jobs and agent to this running `sensorium serve` "
            "(default: SENSORIUM_SERVER_URL; key: SENSORIUM_API_KEY).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _configure_logging(verbose)
    from pydantic import ValidationError

    from api.client import use_server
    from core.settings import get_settings

    try:
        get_settings()
    except ValidationError as exc:  # a bad SENSORIUM_* variable: say which, not a traceback
        fail(f"invalid setting: {_setting_problems(exc)}")
    use_server(server)


@app.command(epilog=example("sensorium ingest ~/Pictures --collection photos --tag family"))
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
        bool, typer.Option("--follow/--no-follow", help="With --distributed or a server: follow the job to its end.")
    ] = True,
    chunk_size: Annotated[
        int | None, typer.Option(min=1, max=100_000, help="With --distributed: files per chunk.")
    ] = None,
    upload: Annotated[
        bool, typer.Option("--upload", help="Client mode: upload these local files instead of naming server paths.")
    ] = False,
    near_duplicates: Annotated[
        str | None,
        typer.Option(
            "--near-duplicates",
            help="index (record the group), skip (leave near copies out, listed by name) or link "
            "(index as a hidden variant of the group's best copy). Default: SENSORIUM_DUPLICATES__INGEST_POLICY.",
        ),
    ] = None,
) -> None:
    """Index media files in place; re-running skips what is already indexed and finishes an interrupted run.

    Embedded, it reads any path you can read. With a server (--server), PATHs are the server's own (checked
    against its SENSORIUM_INGEST__ALLOWED_ROOTS); --upload sends local files instead.
    """
    from api.client import current_client
    from index.duplicates.policy import POLICIES
    from index.ingest.discover import label_problem

    if not paths and manifest is None:
        fail("give files or folders to ingest, or --manifest FILE")
    if near_duplicates is not None and near_duplicates not in POLICIES:
        fail(f"unknown --near-duplicates {near_duplicates!r}: use {', '.join(POLICIES)}")
    problem = label_problem(collection, tag or [])
    if problem:
        fail(problem)
    client = current_client()
    if client is not None:
        from api.cli_remote import remote_ingest

        if near_duplicates not in (None, "index"):
            fail("--near-duplicates skip and link need an embedded ingest (the server ingests with its own policy)")
        remote_ingest(client, paths or [], manifest, collection, tag or [], upload, follow, as_json)
        return
    if upload:
        fail("--upload needs a server: give --server URL or set SENSORIUM_SERVER_URL")
    if distributed and near_duplicates not in (None, "index"):
        fail("--near-duplicates skip and link need a local ingest (not --distributed)")
    if distributed:
        from api.cli_distributed import run_distributed

        run_distributed(paths or [], manifest, collection, tag or [], chunk_size, follow, as_json)
        return
    given = paths or []
    missing = [str(p) for p in given if not p.expanduser().exists()]
    if manifest is None and missing and len(missing) == len(given):  # nothing to do: say so before loading a model
        fail(f"no such file or folder: {', '.join(missing)}")
    if manifest is not None and not manifest.is_file():
        fail(f"manifest not found: {manifest}")
    _ingest_embedded(given, manifest, collection, tag or [], workers, near_duplicates, as_json)


def _ingest_embedded(
    paths: list[Path],
    manifest: Path | None,
    collection: str,
    tags: list[str],
    workers: int | None,
    near_duplicates: str | None,
    as_json: bool,
) -> None:
    from collections.abc import Iterator

    from api.progress import IngestProgress
    from core.settings import get_settings
    from index.duplicates.policy import NEAR_COPY
    from index.encoders import get_encoder
    from index.ingest.discover import Candidate, Rejected, discover
    from index.ingest.manifest import read_manifest
    from index.ingest.prepared import Outcome
    from index.services.ingest import ingest_and_snapshot

    settings = get_settings()
    if workers:
        settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"workers": workers})})
    data_dir = settings.resolved_data_dir()
    # The CLI runs with its user's own permissions: it reads whatever they can read (the server keeps its roots).
    roots = None

    def inputs() -> Iterator[Candidate | Rejected]:
        if manifest is not None:
            yield from read_manifest(manifest, roots, collection, tags)
        yield from discover(paths, roots, collection, tags, exclude=data_dir)

    near_copies: list[Outcome] = []
    try:
        if manifest is not None:
            read_manifest(manifest, roots)  # refuse an unusable manifest before starting
        get_encoder(settings.encoder)  # load the model first: the progress clock then measures the files alone
        announce_weights(settings)
        with IngestProgress(enabled=not as_json) as progress:
            progress.count_in_background(inputs())  # a second, cheap walk: the ETA appears once it is done

            def on_progress(outcome: Outcome) -> None:
                if outcome.reason and outcome.reason.startswith(NEAR_COPY):
                    near_copies.append(outcome)
                progress.update(outcome)

            summary = ingest_and_snapshot(
                inputs(),
                settings,
                on_progress=on_progress,
                on_rebuild=None if as_json else _say_rebuilding,
                near_duplicates=near_duplicates,
            )
    except KeyboardInterrupt:
        typer.secho(
            "interrupted: everything committed so far stays indexed; run the same command again to finish",
            fg=typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(130) from None
    except _user_errors() as exc:
        fail(str(exc))
    failures = [{"path": o.path, "reason": o.reason} for o in summary.failures]
    if not as_json:
        for outcome in near_copies:
            typer.echo(f"skipped {outcome.path}: {outcome.reason}")
    print_ingest_summary(
        {
            "indexed": summary.indexed,
            "skipped": summary.skipped,
            "failed": summary.failed,
            "elapsed_s": round(summary.elapsed_s, 3),
            "ocr": {"pictures": summary.ocr_pictures, "lines": summary.ocr_lines, "seconds": round(summary.ocr_seconds, 3)},
            "failures": failures,
            "near_duplicates_skipped": [{"path": o.path, "reason": o.reason} for o in near_copies],
        },
        as_json,
    )


@app.command(epilog=example('sensorium search "a dog on a beach" --kind image --limit 5'))
def search(
    text: Annotated[str | None, typer.Argument(help="Text query.")] = None,
    image: Annotated[Path | None, typer.Option(help="Query by an image file.")] = None,
    audio: Annotated[Path | None, typer.Option(help="Query by an audio clip (finds similar sounds).")] = None,
    like: Annotated[str | None, typer.Option(metavar="ASSET_ID", help="More like this asset.")] = None,
    mode: Annotated[
        Mode,
        typer.Option(help="For text: vector (CLIP), text (full-text, loads no model) or hybrid (both, fused)."),
    ] = "hybrid",
    kind: Annotated[list[Kind] | None, typer.Option(help="Only this kind (repeatable).")] = None,
    collection: Annotated[list[str] | None, typer.Option(help="Collection (repeatable).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="Required tag (repeatable).")] = None,
    min_score: Annotated[float | None, typer.Option(help="Drop results scoring below this cosine.")] = None,
    k: Annotated[int, typer.Option("-k", "--limit", min=1, max=1000, help="Results per page.")] = 10,
    offset: Annotated[int, typer.Option(min=0, max=10_000, help="Results to skip.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"results": [...], "warnings": [...]} as JSON.')
    ] = False,
) -> None:
    """Search the library by text, by image or audio clip, or by example asset."""
    from api.client import current_client

    for label, path in (("image", image), ("audio", audio)):
        if path is not None and not path.is_file():
            fail(f"query {label} not found: {path}")
    query = {"text": text, "image": image, "audio": audio, "asset_id": like}
    if sum(v is not None for v in query.values()) != 1:
        fail("give exactly one of: TEXT, --image, --audio, --like")
    filters = {"kinds": [k.value for k in kind or []], "collections": collection or [], "tags": tag or []}
    client = current_client()
    if client is not None:
        from api.cli_remote import remote_search

        page = remote_search(client, query, mode, filters, min_score, k, offset)
    else:
        page = _search_embedded(query, mode, filters, min_score, k, offset)
    if as_json:
        typer.echo(json.dumps({"results": page["results"], "warnings": page["warnings"]}))
        return
    from api.render import print_results

    for warning in page["warnings"]:
        note(f"warning: {warning['message']}")
    print_results(page["results"], offset=offset, more=page["more"], empty_library=page.get("empty_library", False))


def _search_embedded(
    query: dict[str, Any], mode: str, filters: dict[str, list[str]], min_score: float | None, k: int, offset: int
) -> dict[str, Any]:
    """Return {results, warnings, more, empty_library} for one page, searched in this process."""
    from core.settings import get_settings
    from index.offline import search_warnings
    from index.search import SearchFilters, SearchRequest, library_is_empty
    from index.search import search as run_search

    settings = get_settings()
    image: Path | None = query["image"]
    request = SearchRequest(
        text=query["text"],
        image=image.read_bytes() if image is not None else None,
        audio=query["audio"],
        asset_id=query["asset_id"],
        mode=mode,
        filters=SearchFilters(**filters),
        min_score=min_score,
        limit=min(k + 1, 1000),  # one more than shown tells whether another page exists
        offset=offset,
    )
    try:
        results = run_search(request, settings)
    except _user_errors() as exc:
        fail(str(exc))
    empty = not results and offset == 0 and library_is_empty(settings)
    return {
        "results": [r.to_dict() for r in results[:k]],
        "warnings": search_warnings(settings.encoder),
        "more": len(results) > k,
        "empty_library": empty,
    }


def _say_rebuilding(vectors: int) -> None:
    typer.echo(f"building the vector index for {vectors:,} vectors...", err=True)


def _report_reembed_failure(asset_id: str, error: str | None) -> None:
    if error:
        typer.secho(f"failed: {asset_id}: {error}", fg=typer.colors.YELLOW, err=True)


@app.command(epilog=example("sensorium reindex --reembed"))
def reindex(
    reembed: Annotated[
        bool, typer.Option("--reembed", help="Re-encode every asset with the configured model.")
    ] = False,
    reprocess: Annotated[
        str | None,
        typer.Option("--reprocess", help="Run media passes again, comma-separated: scenes (re-cut videos), ocr."),
    ] = None,
) -> None:
    """Rebuild the index snapshot from stored vectors (or re-encode everything with --reembed)."""
    from index import reindex as reindexing

    try:
        if reprocess:
            summary = reindexing.reprocess(reprocess.split(","), on_asset=_report_reembed_failure)
            typer.echo(
                f"reprocessed: {summary.reembedded} videos re-cut, {summary.ocr_assets} assets read "
                f"({summary.ocr_lines} text lines), {summary.failed} failed; index holds {summary.vectors} vectors"
            )
            if summary.failed:
                raise typer.Exit(1)
        elif reembed:
            from core.settings import get_settings

            announce_weights(get_settings())
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


@app.command(epilog=example("sensorium demo"))
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
from api.cli_assets import register as _register_assets  # noqa: E402
from api.cli_duplicates import register as _register_duplicates  # noqa: E402
from api.cli_jobs import register as _register_jobs  # noqa: E402
from api.cli_server import register as _register_server  # noqa: E402

for _register in (_register_jobs, _register_server, _register_agent, _register_assets, _register_duplicates):
    _register(app)


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI (console-script entry point)."""
    command = typer.main.get_command(app)
    humanize(command)
    return command.main(args=argv if argv is not None else sys.argv[1:], prog_name="sensorium")


if __name__ == "__main__":
    main()
