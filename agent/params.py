"""Stage 3: parameters read by rules: size, duration, negative prompt, style, threshold and count."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.lexicon import lexicon
from agent.normalise import Token, correct_typo, is_function_word, norm_at, parse_number
from agent.plan import GenerationParams

LEX = lexicon()
WORDS = LEX.words
COUNT_NOUNS = LEX.count_nouns
_DURATION_NUMBERS = "|".join(
    sorted((w for w in LEX.number_words if w not in WORDS["article_only_numbers"]), key=len, reverse=True)
)

SIZE_RE = re.compile(
    r"(?:\b(?:at|in|with|size|sized|resolution|res)\s+){0,3}(?<![\w.])(\d{2,5})\s*(?:x|×|\*|\s+by\s+)\s*"
    r"(\d{2,5})(?:\s*(?:px|pixels?))?(?:\s+(?:resolution|res))?(?![\w.])",
    re.I,
)
DURATION_RE = re.compile(
    rf"(?:\b(?:a|an)\s+)?(?<![\w.])(\d+(?:\.\d+)?|{_DURATION_NUMBERS})\s*-?\s*(seconds?|secs?|minutes?|mins?)\b"
    r"(?:\s*-?\s*long)?(?:\s+each)?"
    r"|(?<![\w.])(\d+(?:\.\d+)?)s(?=\s+(?:video|clip|animation|gif|loop|audio|sound|song|jingle|track)s?\b)",
    re.I,
)
NEGATIVE_RE = re.compile(
    r"(?:,\s*)?(?:\b(?:but|and|with)\s+)?\b(?:no|without|avoid|avoiding|exclude|excluding|minus|"
    r"(?:do not|don't|dont) (?:include|show|add|want))\s+(?P<neg>[^,;:.!?()\"“”]+)",
    re.I,
)
THRESHOLD_RE = re.compile(
    r"\b(?:threshold|score|similarity|confidence)\s*(?:of|above|over|at least|>=|>|=|:)?\s*(0?\.\d+|1\.0*)(?![\d.])",
    re.I,
)
STYLE_OF_RE = re.compile(r"\bin the style of\s+(?P<style>[^,;:.!?()]+)", re.I)
STYLE_RE = re.compile(
    r"(?<![\w-])(?:" + "|".join(re.escape(p) for p in sorted(LEX.style_phrases, key=len, reverse=True)) + r")(?![\w-])",
    re.I,
)
# Words after "no"/"without" that make it part of the request, not a thing to avoid ("no new images").
NOT_NEGATIVE_AFTER = WORDS["negative_guard_after"] | LEX.search_verbs | LEX.generate_verbs | frozenset(
    {"new", "generated", "ai", "ai-generated", "stock", "generation", "need", "existing", "library", "archive"}
)


@dataclass(slots=True)
class FoundParams:
    """Generation parameters plus the character spans they occupied in the request."""

    params: GenerationParams
    spans: list[tuple[int, int]]


def extract_params(text: str) -> FoundParams:
    """Read size, duration, negative prompt and style from text, and where they were."""
    params, spans = GenerationParams(), []
    size = SIZE_RE.search(text)
    if size and all(16 <= int(v) <= 8192 for v in size.groups()):
        params.width, params.height = int(size.group(1)), int(size.group(2))
        spans.append(size.span())
    duration = DURATION_RE.search(text)
    if duration:
        params.duration_s = _duration_seconds(duration)
        spans.append(duration.span())
    negatives = []
    for m in NEGATIVE_RE.finditer(text):
        negative, end = _negative_text(text, m)
        if negative:
            negatives.append(negative)
            spans.append((m.start(), end))
    params.negative_prompt = ", ".join(negatives) or None
    params.style = _style(text)
    return FoundParams(params, spans)


def _duration_seconds(m: re.Match[str]) -> float:
    """Seconds described by a DURATION_RE match."""
    if m.group(3):
        return float(m.group(3))
    amount, unit = m.group(1).lower(), m.group(2).lower()
    value = float(LEX.number_words[amount]) if amount in LEX.number_words else float(amount)
    return value * 60 if unit.startswith("min") else value


def _negative_text(text: str, m: re.Match[str]) -> tuple[str, int]:
    """The thing to avoid in a negative match and where it ends; ('', 0) when 'no' is not a negative."""
    before = text[max(0, m.start() - 40) : m.start()].split()
    if before and before[-1].lower().strip(",") in WORDS["negative_guard_before"]:
        return "", 0
    words: list[re.Match[str]] = []
    for tok in re.finditer(r"[^\W_]+(?:['’\-][^\W_]+)*", m.group("neg")):
        word = correct_typo(tok.group().lower())
        leading = all(w.group().lower() in WORDS["determiners"] for w in words)
        if leading and word in NOT_NEGATIVE_AFTER:
            return "", 0
        if word in WORDS["clause_cutters"] or word in WORDS["trail_filler"] or word in LEX.search_verbs:
            break
        if word in LEX.generate_verbs:
            break
        words.append(tok)
    while words and words[-1].group().lower() in WORDS["conjunctions"]:
        words.pop()
    if not words:
        return "", 0
    neg = m.group("neg")
    return neg[words[0].start() : words[-1].end()], m.start("neg") + words[-1].end()


def _style(text: str) -> str | None:
    """The first style phrase in text ('watercolor'; 'in the style of Monet' -> 'Monet')."""
    style_of = STYLE_OF_RE.search(text)
    if style_of:
        return style_of.group("style").strip()
    style = STYLE_RE.search(text)
    return style.group().lower() if style else None


def blank(text: str, spans: list[tuple[int, int]]) -> str:
    """Replace spans with spaces so character offsets stay valid."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def threshold(text: str) -> float | None:
    """The similarity threshold the request states ('threshold 0.3', 'score above .5'), else None."""
    found = THRESHOLD_RE.search(text)
    return float(found.group(1)) if found else None


def extract_count(tokens: list[Token]) -> tuple[int | None, str]:
    """Return the number of results asked for and the words it came from, or (None, '')."""
    for tok in tokens:
        i = tok.index
        if tok.norm in {"top", "best", "first", "last"} or (tok.norm == "up" and norm_at(tokens, i + 1) == "to"):
            step = 2 if tok.norm == "up" else 1
            value, used = parse_number(tokens, i + step)
            if value is not None:
                return value, " ".join(t.text for t in tokens[i : i + step + used])
        value, used = parse_number(tokens, i)
        if value is None or not 0 < value <= 500 or _is_name_number(tokens, i):
            continue
        j = i + used
        if norm_at(tokens, j) == "of" and norm_at(tokens, j + 1) in {"them", "those", "these"}:
            return value, " ".join(t.text for t in tokens[i : j + 2])
        # A few adjectives may sit between number and noun: "5 different minimalist logos".
        for k in range(j, min(j + 4, len(tokens))):
            word = tokens[k].norm
            if word in COUNT_NOUNS:
                return value, " ".join(t.text for t in tokens[i : k + 1])
            if is_function_word(word) or word.isdigit():
                break
    return _singular(tokens)


def _singular(tokens: list[Token]) -> tuple[int | None, str]:
    """1 when the first media noun is a singular after 'a'/'an' ('a picture of', 'an oil painting'), else None."""
    head = next((t for t in tokens if t.norm in LEX.media), None)
    if head is None or head.norm in WORDS["mass_nouns"] or head.norm not in COUNT_NOUNS or head.norm.endswith("s"):
        return None, ""
    for k in range(head.index - 1, max(head.index - 4, -1), -1):
        word = tokens[k].norm
        if word in {"a", "an"}:
            return 1, " ".join(t.text for t in tokens[k : head.index + 1])
        if is_function_word(word) or tokens[k].is_boundary:
            break
    return None, ""


def _is_name_number(tokens: list[Token], i: int) -> bool:
    """True for a number that belongs to a name ('Apollo 11') rather than a count."""
    prev = tokens[i - 1] if i > 0 else None
    return (
        prev is not None and prev.text[:1].isupper() and prev.norm not in LEX.media
        and prev.norm not in LEX.search_verbs and prev.norm not in LEX.generate_verbs
        and prev.norm not in WORDS["pre_verb"]
    )
