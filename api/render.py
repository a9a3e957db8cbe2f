"""Search results for the terminal: one table from the public result shape (embedded and client mode alike)."""

from __future__ import annotations

from typing import Any

SNIPPET_CHARS = 60


def moment(result: dict[str, Any]) -> str:
    """Return the matched time range, e.g. ``12.0-17.0 s``, or '' for images."""
    segment = result["segment"]
    if segment.get("t_start") is None:
        return ""
    start = segment["t_start"]
    return f"{start:.1f}-{(segment.get('t_end') or start):.1f} s"


def snippet(result: dict[str, Any]) -> str:
    """Return the transcript or OCR words of the matched segment, shortened."""
    text = " ".join((result["segment"].get("text") or "").split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def _score(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_results(
    results: list[dict[str, Any]],
    title: str | None = None,
    offset: int = 0,
    more: bool = False,
    empty_library: bool = False,
) -> None:
    """Print results best first: rank (after ``offset``), the ordering score, name, collection, path, moment, words."""
    import sys

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)  # pipes get full paths, not an 80-column squeeze
    if not results:
        console.print(f"{title + ': ' if title else ''}no results" + (f" after offset {offset}" if offset else ""))
        if empty_library:
            console.print("The library is empty: add media with `sensorium ingest PATH` (or try `sensorium demo`).")
        return
    fused = any(r.get("fused_score") is not None for r in results)
    hybrid = fused and any(r.get("score") is not None for r in results)
    table = Table(title=title, show_lines=False)
    columns = ["#", "fused" if fused else "score", *(["cosine"] if hybrid else [])]
    columns += ["kind", "name", "collection", "path", "moment", "words", "asset id"]
    for column in columns:
        table.add_column(column, no_wrap=column not in ("path", "words"), overflow="fold")
    for rank, result in enumerate(results, offset + 1):
        order = _score(result.get("fused_score"), 4) if fused else _score(result.get("score"), 3)
        cells = [str(rank), order, *([_score(result.get("score"), 3)] if hybrid else [])]
        cells += [result["kind"], result["name"], ", ".join(result.get("collections") or []), result.get("uri") or ""]
        cells += [moment(result), snippet(result), result["asset_id"]]
        table.add_row(*cells)
    console.print(table)
    if more:
        console.print(f"more: --offset {offset + len(results)}")
