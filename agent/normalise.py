"""Stage 1: a request becomes tokens (lower-cased, typos fixed) with each token's role as an instruction verb."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Literal

from agent.lexicon import lexicon

VerbKind = Literal["search", "generate"]

TOKEN_RE = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*|[^\w\s]")
BOUNDARY = frozenset(",;:?!.()-–—")
# A word at least this common (Zipf scale, wordfreq) is a real English word, never a typo.
REAL_WORD_ZIPF = 2.0
# "make sure" is no instruction; "of" turns many verbs into nouns ("a list of").
NOT_OBJECTS: dict[str, tuple[str, ...]] = {"make": ("of", "sure", "certain")}

LEX = lexicon()
WORDS = LEX.words
VERBS = LEX.search_verbs | LEX.generate_verbs
# Words a typo may be corrected to: instruction verbs and media words.
KEYWORDS = VERBS | frozenset(LEX.media)
_KEYWORDS_BY_FIRST: dict[str, tuple[str, ...]] = {}
for _word in sorted(w for w in KEYWORDS if len(w) >= 4 and w.isalpha()):
    _KEYWORDS_BY_FIRST[_word[0]] = (*_KEYWORDS_BY_FIRST.get(_word[0], ()), _word)


@cache
def english_words() -> frozenset[str]:
    """Words of English as wordfreq ships them (its 'large' list), from Zipf 2 up."""
    from wordfreq import get_frequency_dict

    least = 10 ** (REAL_WORD_ZIPF - 9)
    return frozenset(w for w, f in get_frequency_dict("en", wordlist="large").items() if f >= least)


def one_edit_apart(a: str, b: str) -> bool:
    """True when a and b differ by one insertion, deletion, substitution or adjacent swap."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diffs) <= 1:
            return True
        i, j = diffs[0], diffs[-1]
        return len(diffs) == 2 and j == i + 1 and a[i] == b[j] and a[j] == b[i]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


@lru_cache(maxsize=16384)
def correct_typo(word: str) -> str:
    """The keyword one edit away from a word that is not English ('serch' -> 'search'); else the word."""
    if len(word) < 4 or not word.isalpha() or word in KEYWORDS or word in english_words():
        return word
    # Typos rarely change the first letter.
    return next((k for k in _KEYWORDS_BY_FIRST.get(word[0], ()) if one_edit_apart(word, k)), word)


@dataclass(frozen=True, slots=True)
class Token:
    """One word or punctuation mark: original text, normalised form, position and character span."""

    text: str
    norm: str
    index: int
    start: int
    end: int

    @property
    def is_boundary(self) -> bool:
        """True for clause-splitting punctuation."""
        return self.norm in BOUNDARY


def tokenize(text: str) -> list[Token]:
    """Split text into tokens, lower-cased and typo-corrected."""
    return [
        Token(m.group(), correct_typo(m.group().lower().replace("’", "'")), k, m.start(), m.end())
        for k, m in enumerate(TOKEN_RE.finditer(text))
    ]


def norm_at(tokens: list[Token], i: int) -> str:
    """Normalised token at i, or '' outside the list."""
    return tokens[i].norm if 0 <= i < len(tokens) else ""


def _in_verb_slot(tokens: list[Token], i: int) -> bool:
    """True when token i opens a clause, possibly after politeness ('could you please draw')."""
    j = i - 1
    while j >= 0 and tokens[j].norm in WORDS["pre_verb"]:
        j -= 1
    return j < 0 or tokens[j].is_boundary or j < i - 1


def verb_role(tokens: list[Token], i: int) -> VerbKind | None:
    """The kind of instruction token i gives when it is used as a verb, else None."""
    word = tokens[i].norm
    kind: VerbKind | None = "search" if word in LEX.search_verbs else "generate" if word in LEX.generate_verbs else None
    if kind is None or word in WORDS["noun_forms"]:
        return None
    prev, nxt = norm_at(tokens, i - 1), norm_at(tokens, i + 1)
    particles = LEX.particles.get(word)
    not_objects = NOT_OBJECTS.get(word, ("of",) if word in WORDS["noun_like_verbs"] else ())
    if (particles and nxt not in particles) or nxt in not_objects or prev in WORDS["determiners"]:
        return None
    if _in_verb_slot(tokens, i):
        return kind
    # Mid-sentence, a verb with an object is still an instruction ("which clips show a crowd").
    if word != "picture" and (
        particles or nxt in WORDS["object_starters"] or nxt.isdigit() or nxt in LEX.number_words
    ):
        return kind
    return None


@dataclass(slots=True)
class Doc:
    """A request prepared for analysis: tokens, each token's verb role, and the joined normalised text."""

    text: str
    tokens: list[Token]
    roles: list[VerbKind | None] = field(default_factory=list)
    joined: str = ""

    @classmethod
    def parse(cls, text: str) -> Doc:
        """Tokenize text and find its instruction verbs once."""
        tokens = tokenize(text)
        roles = [verb_role(tokens, i) for i in range(len(tokens))]
        return cls(text, tokens, roles, " ".join(t.norm for t in tokens))

    def verb(self, tok: Token) -> VerbKind | None:
        """The instruction kind of tok, or None when it is not used as a verb."""
        return self.roles[tok.index]

    def corrections(self) -> list[str]:
        """Reasons for each word read as another ('read 'serch' as 'search'')."""
        return [f"read '{t.text}' as '{t.norm}'" for t in self.tokens if t.norm != t.text.lower().replace("’", "'")]


def is_function_word(word: str) -> bool:
    """True for words that end a noun phrase (prepositions, pronouns, verbs, punctuation)."""
    return (
        word in BOUNDARY or word in WORDS["linkers"] or word in WORDS["pre_verb"] or word in WORDS["determiners"]
        or word in WORDS["function_words"] or word in VERBS or word in WORDS["linker_verbs"]
    )


def parse_number(tokens: list[Token], i: int) -> tuple[int | None, int]:
    """Return (value, tokens used) for a count phrase at i: '5', 'three', 'a couple of', 'half a dozen'."""
    word = norm_at(tokens, i)
    if word.isdigit():
        # Years and other large numbers name things ("the 2019 launch"); they are not counts.
        return (int(word), 1) if int(word) <= 1000 else (None, 0)
    if word == "half" and norm_at(tokens, i + 1) == "a" and norm_at(tokens, i + 2) == "dozen":
        return 6, 3
    article = 1 if word in {"a", "an"} else 0
    word = norm_at(tokens, i + article)
    if word not in LEX.number_words or (not article and word in WORDS["article_only_numbers"]):
        return None, 0
    if article and word not in {"couple", "pair", "few", "dozen", "single", "hundred"}:
        return None, 0
    used = article + 1
    if word in {"couple", "pair", "dozen", "few"} and norm_at(tokens, i + used) == "of":
        used += 1
    return LEX.number_words[word], used
