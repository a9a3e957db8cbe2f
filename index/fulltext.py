"""Full-text search over transcripts, file names and tags: SQLite FTS5 or PostgreSQL tsvector, one interface."""

from __future__ import annotations

import re
from pathlib import PurePath

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

from core.db.models import TextEntry

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
# Query words that would match nearly everything; OR-queries rank by the words that remain.
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
        "where",
        "who",
        "what",
        "which",
        "when",
        "how",
        "do",
        "does",
        "did",
        "any",
        "some",
        "me",
        "my",
        "our",
        "we",
        "you",
        "your",
        "i",
    ]
)
_MAX_TERMS = 32
# Segments whose text is searchable: speech and the words read in pictures.
TEXT_SEGMENT_KINDS = ("transcript", "ocr")


def asset_body(name: str, tags: list[str]) -> str:
    """Return the searchable text for an asset: its file name split into words, and its tags."""
    stem = PurePath(name).stem
    return " ".join([*_TOKEN.findall(stem), *tags])


def entries_for(asset_id: str, name: str, tags: list[str], transcripts: list[tuple[int, str]]) -> list[TextEntry]:
    """Return the text rows for an asset: one for name and tags, one per (segment id, transcript text)."""
    rows = [TextEntry(asset_id=asset_id, segment_id=None, body=asset_body(name, tags))]
    rows.extend(TextEntry(asset_id=asset_id, segment_id=sid, body=body) for sid, body in transcripts if body.strip())
    return rows


def query_terms(query: str) -> list[str]:
    """Return the lower-cased words of a query worth matching."""
    words = [w.lower() for w in _TOKEN.findall(query)]
    kept = [w for w in words if w not in _STOPWORDS] or words
    return list(dict.fromkeys(kept))[:_MAX_TERMS]


def text_hits(session: Session, query: str, limit: int) -> list[tuple[str, int | None, bool]]:
    """Return (asset id, segment id or None, holds the whole phrase) of the best full-text matches, best first.

    Entries holding the query as a phrase come first, then those holding all its words, then any of them
    (each tier ranked by BM25 / ts_rank_cd): a line reading "Enable two-factor authentication" beats one
    that merely shares most of its words.
    """
    terms = query_terms(query)
    if not terms:
        return []
    words = [w.lower() for w in _TOKEN.findall(query)]
    postgres = session.get_bind().dialect.name == "postgresql"
    tiers = _postgres_tiers(query, terms) if postgres else _sqlite_tiers(words, terms)
    hits: dict[tuple[str, int | None], bool] = {}
    for tier, (statement, params) in enumerate(tiers):
        for row in session.execute(statement, {**params, "limit": limit}).all():
            hits.setdefault((row[0], row[1]), tier == 0)
        if len(hits) >= limit:
            break
    return [(asset_id, segment_id, phrase) for (asset_id, segment_id), phrase in list(hits.items())[:limit]]


def _sqlite_tiers(words: list[str], terms: list[str]) -> list[tuple[TextClause, dict[str, str]]]:
    statement = text(
        "SELECT e.asset_id, e.segment_id FROM text_fts JOIN text_entries e ON e.id = text_fts.rowid "
        "WHERE text_fts MATCH :q ORDER BY bm25(text_fts), e.id LIMIT :limit"
    )
    queries = []
    if len(words) > 1:
        queries.append('"' + " ".join(words) + '"')
    if len(terms) > 1:
        queries.append(" AND ".join(f'"{t}"' for t in terms))
    queries.append(" OR ".join(f'"{t}"' for t in terms))
    return [(statement, {"q": q}) for q in queries]


def _postgres_tiers(query: str, terms: list[str]) -> list[tuple[TextClause, dict[str, str]]]:
    def ranked(tsquery: str) -> TextClause:
        return text(
            f"SELECT e.asset_id, e.segment_id FROM text_entries e, {tsquery} q "
            "WHERE to_tsvector('english', e.body) @@ q "
            "ORDER BY ts_rank_cd(to_tsvector('english', e.body), q) DESC, e.id LIMIT :limit"
        )

    tiers = []
    if len(terms) > 1:
        tiers.append((ranked("phraseto_tsquery('english', :q)"), {"q": query}))
        tiers.append((ranked("to_tsquery('english', :q)"), {"q": " & ".join(terms)}))
    # Words that are all stopwords in 'english' make an empty tsquery, which matches nothing.
    tiers.append((ranked("to_tsquery('english', :q)"), {"q": " | ".join(terms)}))
    return tiers
