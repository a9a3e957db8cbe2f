"""Human-readable rendering of search results for the terminal."""

from __future__ import annotations

from index.search import SearchResult


def _moment(result: SearchResult) -> str:
    segment = result.segment
    if segment.t_start is None:
        return ""
    return f"{segment.t_start:.1f}-{(segment.t_end or segment.t_start):.1f} s"


def print_results(results: list[SearchResult], title: str | None = None) -> None:
    """Print results as a table, best first."""
    import sys

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)  # pipes get full ids, not an 80-column squeeze
    if not results:
        console.print(f"{title + ': ' if title else ''}no results")
        return
    table = Table(title=title, show_lines=False)
    for column in ("#", "score", "kind", "name", "moment", "asset id"):
        table.add_column(column, no_wrap=True, min_width=24 if column == "name" else None)
    for rank, result in enumerate(results, 1):
        score = "-" if result.score is None else f"{result.score:.3f}"
        table.add_row(str(rank), score, result.kind, result.name, _moment(result), result.asset_id)
    console.print(table)
