"""Stage 4: the query, the subject left once instruction words, containers and fallback clauses are removed."""

from __future__ import annotations

import re

from agent.lexicon import lexicon
from agent.normalise import Doc, Token, norm_at, parse_number
from agent.plan import Modality, Route

LEX = lexicon()
WORDS = LEX.words
COUNT_NOUNS = LEX.count_nouns
QUOTED_RE = re.compile(r"[\"“”](?P<a>[^\"“”]{2,})[\"“”]|(?<!\w)['‘](?P<b>[^'‘’]{2,}?)['’](?!\w)")
def _clauses(doc: Doc) -> list[list[Token]]:
    """Split tokens at punctuation and where a conjunction starts a new instruction."""
    clauses: list[list[Token]] = [[]]
    for tok in doc.tokens:
        if tok.is_boundary:
            clauses.append([])
            continue
        if clauses[-1] and _starts_new_instruction(doc, tok.index):
            clauses.append([])
        clauses[-1].append(tok)
    return [c for c in clauses if c]


def _starts_new_instruction(doc: Doc, i: int) -> bool:
    """True at 'if/otherwise/...' and at 'and/or' followed by a verb or fallback word."""
    tokens = doc.tokens
    if tokens[i].norm in WORDS["clause_cutters"]:
        return True
    if tokens[i].norm not in WORDS["conjunctions"]:
        return False
    ahead = tokens[i + 1 : i + 4]
    if norm_at(tokens, i + 2) == "back" and norm_at(tokens, i + 1) in {"fall", "falling"}:
        return True
    return any(doc.verb(t) or t.norm in WORDS["fallback_words"] for t in ahead)


def _is_cue_clause(doc: Doc, clause: list[Token]) -> bool:
    """True when a clause carries instructions (a verb or fallback word) rather than more subject."""
    return any(t.norm in WORDS["fallback_words"] or doc.verb(t) for t in clause)


def _strip_lead(doc: Doc, clause: list[Token], route: Route) -> list[Token]:
    """Drop leading instruction words and 'a photo of'-style containers from a clause."""
    strippable = WORDS["containers"] | (frozenset(LEX.media) if route == "search" else frozenset())
    i, dropped_verb, dropped_any, last_chunk = _lead_start(doc, clause), "", False, None
    while i < len(clause):
        tok = clause[i]
        if doc.verb(tok):
            dropped_verb, dropped_any, i = tok.norm, True, i + 1
        elif tok.norm in WORDS["lead_filler"] and (dropped_any or tok.norm != "in"):
            dropped_any, i = True, i + 1
        elif dropped_any and (linker := _linker_length(clause, i, dropped_verb)):
            i += linker
        elif chunk := _container_chunk(clause, i, strippable, dropped_verb):
            dropped_any, i = True, i + chunk
            last_chunk = i - chunk if clause[i - chunk].norm in WORDS["determiners"] else last_chunk
        else:
            break
    # When every word looked like scaffolding, a last "a voiceover" is the subject ("which videos have a voiceover").
    return clause[i:] if i < len(clause) or last_chunk is None else clause[last_chunk:]


def _lead_start(doc: Doc, clause: list[Token]) -> int:
    """Where instructions may start: after a tool phrase, or at an early verb ('any chance you could draw')."""
    norms = tuple(t.norm for t in clause[:3])
    phrase = next((p for p in LEX.lead_phrases if norms[: len(p)] == p), None)
    if phrase is not None:
        return len(phrase)
    early = next((k for k, t in enumerate(clause[:7]) if doc.verb(t) or t.norm in LEX.media), None)
    return early if early is not None and doc.verb(clause[early]) else 0


def _linker_length(clause: list[Token], i: int, dropped_verb: str) -> int:
    """Length of a linker at i ('of', 'that look like', 'for' after 'search'), else 0."""
    word, nxt = norm_at(clause, i), norm_at(clause, i + 1)
    if word == "for":
        return 1 if dropped_verb in WORDS["search_for_verbs"] else 0
    if word in {"that", "which", "who"} and nxt in WORDS["linker_verbs"]:
        return 3 if norm_at(clause, i + 2) == "like" else 2
    if (word in {"similar", "related"} and nxt == "to") or (word == "looking" and nxt == "like"):
        return 2
    return 1 if word in WORDS["linkers"] else 0


def _container_chunk(clause: list[Token], i: int, strippable: frozenset[str], dropped_verb: str) -> int:
    """Length of '[det] [count] [modifiers] container(s) [relative filler] [linker]' at i, else 0."""
    j, novelty_end, counted = _skip_determiners(clause, i)
    nouns_start = j
    while j < len(clause) and clause[j].norm in strippable:
        j += 1
    if j == nouns_start:
        # "a brand new illustration of X", "five sunset photos": keep the subject, drop count and novelty words;
        # but "the new product line" is the subject itself.
        return novelty_end - i if counted or norm_at(clause, novelty_end) in LEX.media else 0
    while j < len(clause) and clause[j].norm in WORDS["relative_filler"]:
        j += 1
    if j >= len(clause) or clause[j].norm in WORDS["lead_filler"] or clause[j].norm in WORDS["determiners"]:
        return j - i
    linker = _linker_length(clause, j, dropped_verb) or _chunk_linker(clause, i, j)
    return j - i + linker if linker else 0


def _chunk_linker(clause: list[Token], i: int, j: int) -> int:
    """Linkers that depend on the chunk: 'our library contains', 'matches for', 'similar images to'."""
    word, last_noun = clause[j].norm, clause[j - 1].norm
    if last_noun in WORDS["library_nouns"] and (word in WORDS["linker_verbs"] or word in {"for", "contain", "hold", "holds"}):
        return 1
    if word == "for" and last_noun in {"matches", "results", "hits"}:
        return 1
    if word == "to" and any(t.norm in {"similar", "closest", "nearest"} for t in clause[i:j]):
        return 1
    return 0


def _skip_determiners(clause: list[Token], i: int) -> tuple[int, int, bool]:
    """Skip determiners, numbers and modifiers from i; return where that ends, where the last count or
    novelty word ended, and whether a count was skipped."""
    j = novelty_end = i
    counted = False
    while j < len(clause):
        value, used = parse_number(clause, j)
        if value is not None:
            j += used
            # A number is the count only when a countable noun follows: "five sunset photos", not "three dogs".
            if any(t.norm in COUNT_NOUNS for t in clause[j : j + 4]):
                novelty_end, counted = j, True
        elif clause[j].norm in WORDS["determiners"] or clause[j].norm in WORDS["lead_modifiers"]:
            j += 1
            if clause[j - 1].norm in WORDS["novelty_modifiers"]:
                novelty_end = j
        else:
            break
    return j, novelty_end, counted


def _strip_tail(doc: Doc, words: list[Token]) -> list[Token]:
    """Drop trailing politeness, library places, 'use it' and a container ('a castle photo' -> 'a castle')."""
    while words:
        cut = _tail_cut(doc, words)
        if cut == 0:
            break
        words = words[:-cut]
    # Only a bare noun phrase loses its container: "a castle photo", not "a thumbnail for a cooking video".
    rest = words[:-1]
    if words and words[-1].norm in WORDS["trail_containers"] and rest and not any(
        t.norm in WORDS["function_words"] or t.norm in WORDS["linkers"] for t in rest
    ) and any(t.norm not in WORDS["determiners"] for t in rest):
        return rest
    return words


def _tail_cut(doc: Doc, words: list[Token]) -> int:
    """How many trailing tokens of words are not subject, or 0."""
    norms = [t.norm for t in words[-6:]]
    if norms[-1] in WORDS["trail_filler"] or norms[-1] in WORDS["conjunctions"]:
        return 1
    phrase = next((p for p in LEX.tail_phrases if len(norms) > len(p) and tuple(norms[-len(p) :]) == p), None)
    if phrase is not None:
        return len(phrase)
    if len(words) > 2 and norms[-1] in {"it", "one", "them"} and doc.verb(words[-2]):
        return 2
    # "... in our library", "... from the sound archive"
    if norms[-1] in WORDS["library_nouns"]:
        place = next((k for k in range(len(norms) - 2, max(len(norms) - 5, -1), -1) if norms[k] in WORDS["place_prepositions"]), None)
        if place is not None and len(words) > len(norms) - place:
            return len(norms) - place
    return 0


def _span_text(text: str, words: list[Token]) -> str:
    """Original text covering words, with whitespace tidied."""
    raw = re.sub(r"\s+", " ", text[words[0].start : words[-1].end])
    return re.sub(r"\s+([,;:.!?])", r"\1", raw).strip(" ,;:-")


def _is_scaffold(words: list[Token]) -> bool:
    """True when what is left names no subject: 'this', 'the library', '3 variations'."""
    return all(
        t.norm in WORDS["scaffold_words"] or t.norm in WORDS["determiners"] or t.norm in WORDS["containers"] or t.norm in LEX.number_words
        or t.norm.isdigit() or (t.norm in COUNT_NOUNS and t.norm not in LEX.media)
        for t in words
    )


def _after_colon(doc: Doc, clauses: list[list[Token]]) -> list[list[Token]]:
    """Only the clauses after a colon when instructions precede it and a verbless subject follows
    ('convert this idea into an image: a castle built on a cloud')."""
    colon = next((t.index for t in doc.tokens if t.norm == ":"), None)
    if colon is None:
        return clauses
    before = [t for t in doc.tokens[:colon] if doc.verb(t)]
    after = [c for c in clauses if c[0].index > colon]
    if before and after and not any(doc.verb(t) for c in after for t in c):
        return after
    return clauses


def extract_query(doc: Doc, route: Route, modality: Modality) -> str:
    """The subject of the request without instruction words, size or negative clause."""
    quoted = QUOTED_RE.search(doc.text)
    # A quote is the search text or the words to speak; in a picture prompt it is text to draw ("a sign saying 'open'").
    if quoted and not (route == "generate" and modality in {"image", "video"}):
        inner = (quoted.group("a") or quoted.group("b")).strip()
        if inner:
            return inner
    clauses = _after_colon(doc, _clauses(doc))
    stripped = [_strip_tail(doc, _strip_lead(doc, c, route)) for c in clauses]
    stripped = [[] if _is_scaffold(s) else s for s in stripped]
    # Prefer the clause that names media or gives the instruction: "For our blog, draw a dragon".
    relevant = [k for k, s in enumerate(stripped) if s and any(t.norm in LEX.media or doc.verb(t) for t in clauses[k])]
    # ... and of those, one whose verb matches the route: "I want to create a slideshow, find my city photos".
    kind = "generate" if route == "generate" else "search"
    relevant = [k for k in relevant if any(doc.verb(t) == kind for t in clauses[k])] or relevant
    nonempty = [k for k, s in enumerate(stripped) if s]
    if not nonempty:
        return re.sub(r"\s+", " ", doc.text).strip()
    chosen = relevant[0] if relevant else max(nonempty, key=lambda k: len(stripped[k]))
    parts = [_span_text(doc.text, stripped[chosen])]
    for clause, words in zip(clauses[chosen + 1 :], stripped[chosen + 1 :], strict=True):
        if _is_cue_clause(doc, clause):
            break
        if words:
            parts.append(_span_text(doc.text, words))
    return ", ".join(p for p in parts if p)


# ---------------------------------------------------------------------------
