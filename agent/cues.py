"""Stage 2a: rule-shaped evidence in a request (verbs, negation, conditional fallback, media nouns) for the classifier."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from agent.lexicon import lexicon
from agent.normalise import Doc, VerbKind, is_function_word, norm_at
from agent.plan import GenerationParams, Modality

LEX = lexicon()
WORDS = LEX.words
QUESTION_MARKS = frozenset({"?"})


@dataclass(frozen=True, slots=True)
class Head:
    """The media noun a request is about: its modality, the words that decided it, and its token index."""

    modality: Modality
    words: str
    index: int


@dataclass(slots=True)
class Cues:
    """What the rules found: named cue features for the classifier, plus the phrases the hard rules act on."""

    features: list[str] = field(default_factory=list)
    verbs: list[tuple[VerbKind, str]] = field(default_factory=list)
    fallback: str | None = None
    no_generate: str | None = None
    no_search: str | None = None
    head: Head | None = None

    def has_verb(self, kind: VerbKind) -> bool:
        """True when a verb of this kind is used and not negated."""
        return any(k == kind for k, _ in self.verbs)


def find_head(doc: Doc) -> Head | None:
    """The first media noun that heads its phrase ('movie poster' -> poster -> image), else the first one."""
    tokens = doc.tokens
    generic = WORDS["generic_heads"]
    first_verb = next((t.index for t in tokens if doc.verb(t) is not None), 0)
    positions = [t.index for t in tokens if t.norm in LEX.media and doc.verb(t) is None]
    # The object of the instruction comes first: "for the anniversary video, find the recording of ...".
    positions = [i for i in positions if i > first_verb] + [i for i in positions if i <= first_verb]
    for i in positions:
        nxt = norm_at(tokens, i + 1)
        if nxt in LEX.media or nxt in generic or (nxt and not is_function_word(nxt)):
            continue
        word, prev = tokens[i].norm, norm_at(tokens, i - 1)
        if word in generic and (prev in LEX.media or prev in LEX.modifier_modality):
            return Head(LEX.media.get(prev) or LEX.modifier_modality[prev], f"{prev} {word}", i)
        return Head(LEX.media[word], word, i)
    if positions:
        return Head(LEX.media[tokens[positions[0]].norm], tokens[positions[0]].norm, positions[0])
    return None


def _negated_tokens(doc: Doc, spans: list[tuple[int, int]]) -> set[int]:
    """Indexes of the tokens inside character spans of doc.joined."""
    starts, pos = [], 0
    for tok in doc.tokens:
        starts.append(pos)
        pos += len(tok.norm) + 1
    found: set[int] = set()
    for start, end in spans:
        found.update(range(bisect_right(starts, start) - 1, bisect_right(starts, end - 1)))
    return found


def read_cues(doc: Doc, params: GenerationParams) -> Cues:
    """Gather the rule-shaped evidence of a request."""
    cues = Cues()
    feats = cues.features
    patterns = LEX.cues
    negations = [m for name in ("no_generate", "no_search") for m in patterns[name].finditer(doc.joined)]
    negated = _negated_tokens(doc, [m.span() for m in negations])
    for name in ("no_generate", "no_search"):
        found = patterns[name].search(doc.joined)
        if found:
            setattr(cues, name, found.group())
            feats.append(f"cue:{name}")
    for tok in doc.tokens:
        kind = doc.verb(tok)
        if kind is not None and tok.index not in negated:
            cues.verbs.append((kind, tok.norm))
    if cues.verbs:
        feats.append(f"cue:first_verb={cues.verbs[0][0]}")
        feats.append(f"cue:last_verb={cues.verbs[-1][0]}")
        feats.extend(sorted({f"cue:verb={kind}" for kind, _ in cues.verbs}))
        # "we're making a brochure, so pull the photos": an -ing verb tells the context, not the instruction.
        feats.extend(sorted({f"cue:ing_verb={kind}" for kind, verb in cues.verbs if verb.endswith("ing")}))
    else:
        feats.append("cue:no_verb")
    fallback = patterns["fallback"].search(doc.joined)
    if fallback:
        cues.fallback = fallback.group()
        feats.append("cue:fallback")
    feats.extend(f"cue:{name}" for name in ("library", "creation", "hypothetical") if patterns[name].search(doc.joined))
    _media_cues(doc, cues)
    _form_cues(doc, params, feats)
    return cues


def _media_cues(doc: Doc, cues: Cues) -> None:
    """Media nouns, the head noun and its determiner, verbs that make one kind, hint words."""
    feats = cues.features
    kinds = sorted({LEX.media[t.norm] for t in doc.tokens if t.norm in LEX.media and doc.verb(t) is None})
    feats.extend(f"cue:media={kind}" for kind in kinds)
    cues.head = head = find_head(doc)
    if head is None:
        feats.append("cue:no_media")
    else:
        feats.append(f"cue:head={head.modality}")
        before = [t.norm for t in doc.tokens[max(0, head.index - 4) : head.index]]
        determiner = next((w for w in reversed(before) if w in WORDS["determiners"]), None)
        definite = "definite" if determiner in WORDS["definite"] else "indefinite" if determiner else "bare"
        plural = "plural" if doc.tokens[head.index].norm.endswith("s") else "singular"
        feats.append(f"cue:head_{definite}_{plural}")
    for kind, verb in cues.verbs:
        made = LEX.verb_modality.get(verb)
        if made:
            feats.append(f"cue:verb_makes={made}" if kind == "generate" else f"cue:verb_seeks={made}")
    feats.extend(sorted({f"cue:hint={LEX.modality_hints[t.norm]}" for t in doc.tokens if t.norm in LEX.modality_hints}))


def _form_cues(doc: Doc, params: GenerationParams, feats: list[str]) -> None:
    """Question form, quotes, and generation parameters that make a request read like a prompt."""
    first = next((t for t in doc.tokens if not t.is_boundary), None)
    if (first is not None and first.norm in WORDS["question_starters"]) or QUESTION_MARKS & set(doc.text):
        feats.append("cue:question")
    if any(q in doc.text for q in "\"“'‘"):
        feats.append("cue:quote")
    for name in ("width", "duration_s", "negative_prompt", "style"):
        if getattr(params, name) is not None:
            feats.append(f"cue:param_{name}")
