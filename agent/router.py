"""Deterministic natural-language router: a request becomes a Plan (route, modality, count, query, params)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Protocol

from agent.plan import GenerationParams, Modality, Plan, Route

MAX_REQUEST_CHARS = 4000

VerbKind = Literal["search", "generate"]


def _words(text: str) -> frozenset[str]:
    """A word set written as one space-separated string, for long vocabularies."""
    return frozenset(text.split())


# ---------------------------------------------------------------------------
# Vocabulary. Weights: 3 = an unambiguous instruction, 2 = usually one, 1 = a hint.
# ---------------------------------------------------------------------------

SEARCH_VERBS: dict[str, float] = {
    "find": 3, "search": 3, "show": 3, "retrieve": 3, "get": 3, "list": 3, "fetch": 3, "locate": 3,
    "pull": 3, "grab": 3, "browse": 3, "display": 3, "seek": 3, "look": 3, "hunt": 3, "query": 3,
    "reuse": 3, "re-use": 3, "track": 2, "bring": 2, "dig": 2, "surface": 2, "check": 2, "return": 2,
    "use": 2, "see": 2, "view": 2, "play": 2, "watch": 2, "hear": 2, "listen": 2, "pick": 2,
    "select": 2, "choose": 2, "finding": 2, "searching": 2, "looking": 2, "give": 0.5,
}
GEN_VERBS: dict[str, float] = {
    "generate": 3, "create": 3, "make": 3, "draw": 3, "paint": 3, "render": 3, "illustrate": 3,
    "compose": 3, "produce": 3, "animate": 3, "design": 3, "imagine": 3, "sketch": 3, "synthesize": 3,
    "synthesise": 3, "write": 3, "craft": 3, "invent": 3, "conjure": 3, "visualize": 3, "visualise": 3,
    "envision": 3, "doodle": 3, "recreate": 3, "reimagine": 3, "redraw": 3, "sing": 3, "narrate": 3,
    "picture": 3, "whip": 3, "cook": 3, "mock": 3, "dream": 3, "come": 3, "generating": 3,
    "creating": 3, "producing": 3, "composing": 3, "designing": 3, "animating": 3, "synthesizing": 3,
    "imagining": 3, "making": 2, "build": 2, "put": 2, "depict": 2, "record": 2,
}
# Verbs that only instruct with a particle: "look up", "whip up", "come up with".
_LOOK_PARTICLES = frozenset({"up", "for", "through", "at", "into", "in", "around", "over"})
PARTICLES: dict[str, frozenset[str]] = {
    "look": _LOOK_PARTICLES,
    "looking": _LOOK_PARTICLES,
    "track": frozenset({"down"}),
    "dig": frozenset({"up", "out", "through"}),
    "bring": frozenset({"up", "me", "us"}),
    "whip": frozenset({"up"}),
    "cook": frozenset({"up"}),
    "mock": frozenset({"up"}),
    "dream": frozenset({"up"}),
    "come": frozenset({"up"}),
    "put": frozenset({"together"}),
}
# Words after which a verb is not an instruction: "make sure"; "of" turns these into nouns ("a list of").
NOT_OBJECTS: dict[str, tuple[str, ...]] = {"make": ("of", "sure", "certain")}
NOUN_LIKE_VERBS = _words(
    "list search find show look display view watch play pick return record design sketch render picture paint "
    "draw use check track surface query select dream cook mock put come"
)
# Retrieval verbs that say nothing about whether the thing exists yet.
GENERIC_VERBS = _words("get give")
# The verb's own media, used when the request names none ("animate a paper boat").
VERB_MODALITY: dict[str, Modality] = {
    "animate": "video", "animating": "video", "compose": "audio", "composing": "audio", "sing": "audio",
    "narrate": "audio", "record": "audio", "hear": "audio", "listen": "audio", "watch": "video",
}

_IMAGE_WORDS = (
    "photo photos photograph photographs image images picture pictures pic pics pix shot shots snapshot "
    "snapshots drawing drawings illustration illustrations painting paintings logo logos poster posters "
    "wallpaper wallpapers icon icons sketch sketches artwork artworks portrait portraits screenshot "
    "screenshots selfie selfies headshot headshots thumbnail thumbnails banner banners graphic graphics "
    "meme memes diagram diagrams sticker stickers avatar avatars render renders rendering renderings "
    "watercolor watercolors watercolour watercolours cartoon cartoons design designs photography storyboard "
    "storyboards infographic infographics comic comics snap snaps stills imagery visuals jpg jpgs jpeg jpegs png "
    "pngs svg svgs webp"
)
_VIDEO_WORDS = (
    "video videos clip clips footage film films movie movies animation animations gif gifs reel reels "
    "timelapse time-lapse trailer trailers vlog vlogs b-roll broll screencast screencasts cinemagraph mp4 mp4s "
    "mov webm"
)
_AUDIO_WORDS = (
    "audio sound sounds recording recordings song songs music jingle jingles podcast podcasts voice "
    "voices speech speeches track tracks soundtrack soundtracks tune tunes melody melodies ringtone "
    "ringtones sfx narration voiceover voiceovers voice-over audiobook audiobooks lullaby lullabies "
    "noise noises anthem anthems symphony beat beats soundscape soundscapes ambience chime chimes vocals "
    "instrumental instrumentals mp3 mp3s wav wavs flac"
)
MEDIA: dict[str, Modality] = {
    **dict.fromkeys(_IMAGE_WORDS.split(), "image"),
    **dict.fromkeys(_VIDEO_WORDS.split(), "video"),
    **dict.fromkeys(_AUDIO_WORDS.split(), "audio"),
}
# Containers whose own kind yields to a media modifier: "audio clip" is audio, "video recording" video.
GENERIC_HEADS = frozenset({"clip", "clips", "track", "tracks", "recording", "recordings", "file", "files"})
# Non-media words that decide a generic container: a "screen recording" is video.
MODIFIER_MODALITY: dict[str, Modality] = {"screen": "video", "camera": "video", "webcam": "video", "cctv": "video"}
# Singular artwork nouns: with no verb, "an oil painting of a ship" reads as a prompt, "photos of ships" as a search.
ART_NOUNS = _words(
    "illustration painting drawing sketch logo poster icon wallpaper artwork cartoon render watercolor "
    "watercolour banner sticker avatar jingle melody lullaby ringtone anthem soundtrack animation"
)
# Words that only hint at a kind when no media noun is named.
MODALITY_HINTS: dict[str, Modality] = {
    "listening": "audio", "singing": "audio", "hum": "audio", "humming": "audio", "melodic": "audio",
    "listen": "audio", "hear": "audio", "watch": "video", "watching": "video", "animated": "video", "slow-motion": "video", "slo-mo": "video", "fps": "video",
}
# Nouns that name a container, not the subject: dropped from the query ("an image of X" -> "X").
CONTAINERS = _words(
    "photo photos photograph photographs image images picture pictures pic pics pix shot shots snapshot "
    "snapshots video videos clip clips footage film films movie movies gif gifs recording recordings "
    "audio sound sounds file files asset assets media content stuff item items result results match "
    "matches hit hits option options variation variations variant variants version versions example "
    "examples one ones sample samples thing things anything something everything candidates "
    "alternatives suggestions library archive archives collection database animation animations uploads"
)
_MASS_NOUNS = frozenset({"footage", "music", "audio", "speech", "photography", "b-roll", "broll", "sfx"})
COUNT_NOUNS = frozenset(MEDIA) - _MASS_NOUNS | _words(
    "asset assets file files item items result results match matches hit hits option options variation "
    "variations variant variants version versions example examples one ones sample samples candidate "
    "candidates alternative alternatives suggestion suggestions take takes pick picks choice choices copy "
    "copies concept concepts idea ideas draft drafts iteration iterations rendition renditions frame "
    "frames piece pieces"
)
# Noun forms of creation verbs: never read as instructions.
NOUN_FORMS = _words(
    "drawing drawings painting paintings sketches renders rendering renderings designs illustrations "
    "compositions productions animations creations"
)

NUMBER_WORDS: dict[str, int] = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "hundred": 100, "single": 1, "pair": 2, "couple": 2, "few": 3, "dozen": 12,
}
# Vague quantities that only count with an article: "a few photos" is 3, "few photos" is not a count.
ARTICLE_ONLY_NUMBERS = frozenset({"single", "pair", "few"})
_DURATION_NUMBERS = "|".join(sorted((w for w in NUMBER_WORDS if w not in ARTICLE_ONLY_NUMBERS), key=len)[::-1])

DETERMINERS = _words(
    "a an the this that these those my our your his her their its some any every each all no of"
)
DEFINITE = _words("the this that these those my our your his her their its")
# Words that may stand between the start of a clause and its verb ("could you please draw").
PRE_VERB = _words(
    "please pls plz kindly can could would will should you u i we want need like love to just also now "
    "then and or so hey hi ok okay quickly go ahead let's lets let me us help try mind gonna wanna first "
    "maybe perhaps simply i'd we'd you'd i'll we'll you'll else otherwise instead rather trying i'm im we're "
    "am are is was currently still prefer ideally"
)
OBJECT_STARTERS = _words(
    "a an the me us him her them it one some something anything this that these those my our your up "
    "out down several few couple any all every everything more another new fresh"
)
FUNCTION_WORDS = _words(
    "for from in on at by to and or but if as than into onto over under near without please where when "
    "while it one ones we you i they them he she is are was were be been"
)
BOUNDARY = frozenset(",;:?!.()-–—")
QUESTION_STARTERS = _words(
    "do does did is are was were have has any anything got which where what who whose where's what's"
)

# Leading words that carry no subject: instruction, politeness, question scaffolding.
LEAD_FILLER = _words(
    "please pls plz kindly can could would will should you u i we want wanted need needs like love to "
    "just also now then and or so hey hi ok okay quickly go ahead let's lets let me us help try mind "
    "gonna wanna maybe perhaps simply i'd we'd you'd i'll i'm im be able is are was there there's theres "
    "do does did have has got we've where which what any anything some in already existing ideally "
    "quick question hello up down out together if whether after trying first how prefer preferably where's "
    "what's who's i'm we're am currently still"
)
# Leading phrases that name the tool, not the subject: "text to speech: welcome aboard".
LEAD_PHRASES: tuple[tuple[str, ...], ...] = (("text", "to", "speech"), ("text-to-speech",), ("tts",))
LEAD_MODIFIERS = _words(
    "new brand existing fresh original single more different other unique random good nice great best "
    "top high quality res resolution hd similar matching relevant stock recent available possible few "
    "couple dozen pair of additional quick short most custom closest nearest least at to than exactly only max "
    "maximum set series batch bunch handful group several many multiple various lots lot"
)
# Modifiers dropped even before a noun the prompt keeps ("a brand new illustration" -> "illustration").
NOVELTY_MODIFIERS = _words("new brand fresh original existing different other unique more additional custom")
LINKERS = _words(
    "of with where showing show shows featuring depicting containing about from having in on like whose "
    "when while mentioning tagged labelled labeled called named titled"
)
LINKER_VERBS = _words(
    "show shows contain contains feature features depict depicts have has look looks include includes "
    "match matches resemble resembles are is mention mentions discuss discusses"
)
RELATIVE_FILLER = _words("we you have got already in our the")
# "search X for Y": after these verbs, or after a library noun, "for" introduces the subject.
SEARCH_FOR_VERBS = frozenset({"search", "look", "hunt", "check", "query", "searching", "looking", "browse", "dig", "scan"})
LIBRARY_NOUNS = frozenset({"library", "archive", "archives", "collection", "database", "assets"})
TRAIL_FILLER = _words("please pls plz thanks thx asap now quickly today first")
TAIL_PHRASES: tuple[tuple[str, ...], ...] = (
    ("would", "look", "like"), ("might", "look", "like"), ("could", "look", "like"), ("that", "we", "have"),
    ("do", "we", "have"), ("looks", "like"), ("look", "like"), ("we", "have"), ("we've", "got"),
    ("thank", "you"), ("if", "possible"), ("for", "me"), ("for", "us"), ("in", "them"), ("in", "it"),
)
PLACE_PREPOSITIONS = frozenset({"in", "from", "on", "within", "inside"})
TRAIL_CONTAINERS = _words(
    "photo photos image images picture pictures pic pics shot shots video videos clip clips footage file "
    "files asset assets"
)
SCAFFOLD_WORDS = _words(
    "it them one ones this that these those assets library archive collection database new generated ai-generated"
)
CLAUSE_CUTTERS = _words("if unless otherwise else whichever failing")
CONJUNCTIONS = _words("and or but then so")
FALLBACK_WORDS = _words(
    "if unless otherwise else whichever failing fallback library existing reuse already archive"
)
PROPER_AFTER_NEW = _words("york zealand jersey orleans delhi mexico year years hampshire england")

STYLE_PHRASES = (
    "oil painting", "pencil drawing", "pencil sketch", "charcoal drawing", "ink drawing", "pixel art",
    "3d render", "low poly", "digital art", "concept art", "line art", "flat design", "black and white",
    "art deco", "pop art", "studio ghibli", "film noir", "lo-fi", "8-bit", "watercolor", "watercolour",
    "photorealistic", "photo-realistic", "hyperrealistic", "cartoon", "anime", "manga", "minimalist",
    "vintage", "retro", "cyberpunk", "steampunk", "impressionist", "surreal", "isometric", "claymation",
    "cinematic", "sepia", "noir", "vector", "charcoal", "pastel", "origami", "orchestral", "acoustic",
)

# ---------------------------------------------------------------------------
# Phrase cues, matched on the normalised token string (tokens joined by single spaces).
# ---------------------------------------------------------------------------


def _phrases(*patterns: str) -> re.Pattern[str]:
    """Compile alternatives that must start and end on token boundaries."""
    return re.compile(r"(?<!\S)(?:" + "|".join(patterns) + r")(?!\S)")


# A stated absence of a library hit: implies a search, with generation as the fallback.
ABSENCE = _phrases(
    r"if (?:there (?:is|are) |there's |theres )?(?:not|none|nothing|no)",
    r"if (?:there|it|one) (?:isn't|aren't|is not|are not|doesn't|does not|don't)",
    r"if (?:we|you|i) (?:don't|dont|do not|can't|cant|cannot|can not|couldn't|haven't|have not|didn't|lack)",
    r"if (?:it's |it is |that's )?(?:missing|unavailable|absent|not found)",
    r"unless (?:we|there|you|it|one)",
    r"fall(?:s|ing)? back", r"fallback", r"last resort", r"failing that",
    r"before (?:generating|creating|making|drawing|producing|rendering)",
    r"(?:library|archive|search|existing) first",
    r"(?:find|search|get|fetch|retrieve|reuse) or (?:generate|create|make|produce|draw|render)",
    r"(?:generate|create|make) or (?:find|reuse|retrieve)",
    r"in case (?:there's|there is|we|nothing|none)",
    r"if (?:that|it|this|the search) (?:fails|doesn't work|turns up nothing)", r"if unsuccessful", r"no luck",
)
# Asking for existing-or-new outright needs no separate verbs.
EITHER = _phrases(
    r"(?:existing|library|stock|archive) (?:\S+ ){0,2}?or (?:a |an )?(?:new|newly|freshly|generated|ai-generated|ai|fresh|custom)",
    r"(?:new|generated|custom) or (?:existing|stock|from the library)", r"library first",
    r"(?:find|search|reuse) or (?:generate|create|make)",
)
# Alternatives that only mean "fall back" when the request holds both a search and a creation cue.
WEAK_FALLBACK = _phrases(
    r"otherwise", r"else", r"instead", r"whichever", r"either way", r"if", r"unless", r"in case", r"as needed",
)
LIBRARY_CUES = _phrases(
    r"library", r"archives?", r"collection", r"catalog(?:ue)?", r"database", r"on file", r"in stock",
    r"stock", r"existing", r"already", r"previously", r"uploaded", r"uploads", r"ingested", r"indexed", r"stored",
    r"saved", r"on hand", r"we have", r"we've got", r"we got", r"we own", r"have we got", r"you have",
    r"is there", r"are there", r"last (?:year|year's|month|month's|week|week's|time|quarter|summer|winter|spring|autumn)",
    r"yesterday", r"yesterday's",
    r"we (?:used|made|shot|recorded|took|created|generated|produced|uploaded|filmed|published|posted|ran|did)",
)
CREATION_CUES = _phrases(
    r"brand new", r"from scratch", r"new (?:one|ones|version|versions|variation|variations)", r"newly",
    r"text to speech", r"text-to-speech", r"tts", r"read (?:aloud|out)",
)
# "show me what a lava dragon would look like" asks for something that does not exist yet.
HYPOTHETICAL = _phrases(r"(?:would|might|could) (?:\S+ ){0,8}?(?:look|sound) like", r"what if")
WEAK_CREATION_CUES = _phrases(r"original", r"custom", r"fresh", r"unique")
PROMPT_CUES = _phrases(
    r"in the style of", r"highly detailed", r"hyper-?realistic", r"photorealistic", r"4k", r"8k",
    r"trending on artstation", r"octane render", r"unreal engine", r"cinematic lighting", r"digital art",
    r"concept art",
)

# ---------------------------------------------------------------------------
# Parameter patterns, matched on the raw request (case kept for the values).
# ---------------------------------------------------------------------------

SIZE_RE = re.compile(
    r"(?:\b(?:at|in|with|size|sized|resolution|res)\s+){0,3}(?<![\w.])(\d{2,5})\s*(?:x|×|\*|\s+by\s+)\s*"
    r"(\d{2,5})(?:\s*(?:px|pixels?))?(?:\s+(?:resolution|res))?(?![\w.])",
    re.I,
)
DURATION_RE = re.compile(
    rf"(?:\b(?:a|an)\s+)?(?<![\w.])(\d+(?:\.\d+)?|{_DURATION_NUMBERS})\s*-?\s*(seconds?|secs?|minutes?|mins?)\b"
    r"(?:\s*-?\s*long)?"
    r"|(?<![\w.])(\d+(?:\.\d+)?)s(?=\s+(?:video|clip|animation|gif|loop|audio|sound|song|jingle|track)s?\b)",
    re.I,
)
NEGATIVE_RE = re.compile(
    r"(?:,\s*)?(?:\b(?:but|and|with)\s+)?\b(?:no|without|avoid|avoiding|exclude|excluding|minus|"
    r"(?:do not|don't|dont) (?:include|show|add|want))\s+(?P<neg>[^,;:.!?()\"“”]+)",
    re.I,
)
# "if there is no match" and "no more than" are not negative prompts.
NEGATIVE_GUARD_BEFORE = _words(
    "is are was were there there's theres there're if have has had we you find found get got"
)
NEGATIVE_GUARD_AFTER = _words(
    "match matches result results luck one ones existing good suitable such more less longer need problem "
    "idea other way worries rush asking waiting delay confirmation hesitation fit hits"
)
THRESHOLD_RE = re.compile(
    r"\b(?:threshold|score|similarity|confidence)\s*(?:of|above|over|at least|>=|>|=|:)?\s*(0?\.\d+|1\.0*)(?![\d.])",
    re.I,
)
STYLE_OF_RE = re.compile(r"\bin the style of\s+(?P<style>[^,;:.!?()]+)", re.I)
STYLE_RE = re.compile(
    r"(?<![\w-])(?:" + "|".join(re.escape(p) for p in sorted(STYLE_PHRASES, key=len, reverse=True)) + r")(?![\w-])",
    re.I,
)
QUOTED_RE = re.compile(r"[\"“”](?P<a>[^\"“”]{2,})[\"“”]|(?<!\w)['‘](?P<b>[^'‘’]{2,}?)['’](?!\w)")
TOKEN_RE = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*|[^\w\s]")

# ---------------------------------------------------------------------------
# Typo tolerance.
# ---------------------------------------------------------------------------

# Words a typo may be corrected to.
VOCAB = frozenset(SEARCH_VERBS) | frozenset(GEN_VERBS) | frozenset(MEDIA) | _words(
    "library existing already otherwise archive collection generate variations matches"
)
# Real words one edit away from a keyword: "jungle" is not a misspelt "jingle", "files" not "films".
NOT_TYPOS = CONTAINERS | COUNT_NOUNS | LEAD_FILLER | LINKERS | _words(
    "trucks truck tricks trick traces trace tract spots shoes shoot shoots slots chips chip print prints "
    "point points pains crate crates compost found round jungle jiggle white wrote writer writes reader "
    "phone phones audit poser posted pastor irons firms fills moves moved exiting built intent invest "
    "stack stacks heart heard comet things thing noisy trainer pointing panting printing pictured "
    "clipped drama faint paints painted showy shown showed photon imago makes maker makers drawn draws "
    "drew finds lists listed gives given picks seeks sings tuned tuner plays player watches views viewer "
    "users ideas beats beast boats coats least feast scene scent voter voters voted rendered composer "
    "composed producer produced creator created creates generated generates designer designed painter "
    "sketched animated animates imagined imagines illustrated depicted doodles fetched fetches locates "
    "located retrieved retrieves searched searches checks returned returns selects chooses chose "
    "listens listened watched hears played pulls pulled grabs grabbed browsed browses displays "
    "displayed dreams dreamt dreamed cooks cooked mocks mocked writing crafts crafted builds builder "
    "invents invented singer narrated narrator tracked tracker using based cases archived banker bankers "
    "banned banter browser cheating collections creatine depicts dread illustrates imaging incent indent "
    "locale marches matched memos noses photons plaint produces product proto readers refuse renters "
    "reused shops shorts shouts shuts starch tones tracts trailed trainers tubes voiced witch records"
)
# Keywords too close to common words to be worth guessing ("being" is not a misspelt "bring").
NOT_TARGETS = _words(
    "bring check surface finding looking making reel reels broll re-use synthesise beats chime chimes comic comics "
    "stills snaps visuals vocals"
)
_VOCAB_BY_FIRST: dict[str, tuple[str, ...]] = {}
for _word in sorted(w for w in VOCAB if len(w) >= 5):
    _VOCAB_BY_FIRST[_word[0]] = (*_VOCAB_BY_FIRST.get(_word[0], ()), _word)


def _one_edit_apart(a: str, b: str) -> bool:
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
    """Return the keyword one edit away from word (typos rarely change the first letter), else word."""
    if len(word) < 5 or word in VOCAB or word in NOT_TYPOS or not word.isalpha():
        return word
    for candidate in _VOCAB_BY_FIRST.get(word[0], ()):
        if candidate not in NOT_TARGETS and _one_edit_apart(word, candidate):
            return candidate
    return word


# ---------------------------------------------------------------------------
# Tokens and the analysed request.
# ---------------------------------------------------------------------------


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


def _norm(tokens: list[Token], i: int) -> str:
    """Normalised token at i, or '' outside the list."""
    return tokens[i].norm if 0 <= i < len(tokens) else ""


def _in_verb_slot(tokens: list[Token], i: int) -> bool:
    """True when token i opens a clause, possibly after politeness ('could you please draw')."""
    j = i - 1
    while j >= 0 and tokens[j].norm in PRE_VERB:
        j -= 1
    return j < 0 or tokens[j].is_boundary or j < i - 1


def verb_role(tokens: list[Token], i: int) -> tuple[VerbKind | None, float]:
    """Return (kind, weight) when token i is used as an instruction verb, else (None, 0)."""
    word = tokens[i].norm
    kind: VerbKind | None = "search" if word in SEARCH_VERBS else "generate" if word in GEN_VERBS else None
    if kind is None or word in NOUN_FORMS:
        return None, 0.0
    prev, nxt = _norm(tokens, i - 1), _norm(tokens, i + 1)
    particles = PARTICLES.get(word)
    not_objects = NOT_OBJECTS.get(word, ("of",) if word in NOUN_LIKE_VERBS else ())
    if (particles and nxt not in particles) or nxt in not_objects or prev in DETERMINERS:
        return None, 0.0
    weight = SEARCH_VERBS.get(word) or GEN_VERBS[word]
    if _in_verb_slot(tokens, i):
        return kind, weight
    # Mid-sentence, a verb with an object is still an instruction, a weaker one ("which clips show a crowd").
    if word != "picture" and (particles or nxt in OBJECT_STARTERS or nxt.isdigit() or nxt in NUMBER_WORDS):
        return kind, weight - 1
    return None, 0.0


@dataclass(slots=True)
class Doc:
    """A request prepared for analysis: tokens, each token's verb role, and the joined normalised text."""

    text: str
    tokens: list[Token]
    roles: list[tuple[VerbKind | None, float]] = field(default_factory=list)
    joined: str = ""

    @classmethod
    def parse(cls, text: str) -> Doc:
        """Tokenize text and classify verbs once."""
        tokens = tokenize(text)
        roles = [verb_role(tokens, i) for i in range(len(tokens))]
        return cls(text, tokens, roles, " ".join(t.norm for t in tokens))

    def verb(self, tok: Token) -> VerbKind | None:
        """The instruction kind of tok, or None when it is not used as a verb."""
        return self.roles[tok.index][0]


def _parse_number(tokens: list[Token], i: int) -> tuple[int | None, int]:
    """Return (value, tokens used) for a count phrase at i: '5', 'three', 'a couple of', 'half a dozen'."""
    word = _norm(tokens, i)
    if word.isdigit():
        # Years and other large numbers name things ("the 2019 launch"); they are not counts.
        return (int(word), 1) if int(word) <= 1000 else (None, 0)
    if word == "half" and _norm(tokens, i + 1) == "a" and _norm(tokens, i + 2) == "dozen":
        return 6, 3
    article = 1 if word in {"a", "an"} else 0
    word = _norm(tokens, i + article)
    if word not in NUMBER_WORDS or (not article and word in ARTICLE_ONLY_NUMBERS):
        return None, 0
    if article and word not in {"couple", "pair", "few", "dozen", "single", "hundred"}:
        return None, 0
    used = article + 1
    if word in {"couple", "pair", "dozen", "few"} and _norm(tokens, i + used) == "of":
        used += 1
    return NUMBER_WORDS[word], used


# ---------------------------------------------------------------------------
# Route.
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class Cues:
    """Evidence for each route gathered from a request."""

    search: float = 0.0
    question: float = 0.0
    generate: float = 0.0
    first_verb: str | None = None
    first_verb_kind: VerbKind | None = None
    main_gen_verb: str | None = None
    absence: bool = False
    weak_fallback: bool = False
    either: bool = False
    reasons: list[str] = field(default_factory=list)


def gather_cues(doc: Doc, params: GenerationParams, head: Head | None) -> Cues:
    """Score search and creation evidence: verbs (first one counts double), phrases, question form."""
    artwork = head is not None and _is_indefinite_artwork(doc, head.index)
    cues = _score_verbs(doc, artwork)
    _score_phrases(cues, doc)
    _score_question(cues, doc)
    if cues.first_verb is None and (artwork or looks_like_prompt(params, head)):
        cues.generate += 1
        cues.reasons.append("no instruction verb; reads as a generation prompt")
    return cues


def _score_verbs(doc: Doc, artwork: bool) -> Cues:
    """Add up instruction verbs; a creation verb after a searching question is an implicit fallback."""
    cues = Cues()
    question_at = next((t.index for t in doc.tokens if t.norm == "?"), len(doc.tokens))
    searched_before_question = False
    for tok in doc.tokens:
        kind, weight = doc.roles[tok.index]
        # "get an animation of a rocket" asks for a new artwork as often as an old one: let other cues decide.
        if kind is None or (artwork and tok.norm in GENERIC_VERBS):
            continue
        if cues.first_verb is None:
            cues.first_verb, cues.first_verb_kind = tok.norm, kind
            weight += min(2.0, weight)
            cues.reasons.append(f"first instruction verb '{tok.text}' ({kind})")
        if kind == "search":
            cues.search += weight
            searched_before_question |= tok.index < question_at
            continue
        cues.generate += weight
        cues.main_gen_verb = cues.main_gen_verb or tok.norm
        # "do we have X? make one" falls back without saying "if not".
        cues.weak_fallback |= tok.index > question_at and searched_before_question
    return cues


def _score_phrases(cues: Cues, doc: Doc) -> None:
    """Add library, creation, prompt-style and fallback phrase evidence to cues."""
    library = LIBRARY_CUES.findall(doc.joined)
    if library:
        cues.search += 2 * len(library)
        cues.reasons.append(f"library cue '{library[0]}'")
    creation = CREATION_CUES.findall(doc.joined)
    if creation:
        cues.generate += 3 * len(creation)
        cues.reasons.append(f"creation cue '{creation[0]}'")
    hypothetical = HYPOTHETICAL.search(doc.joined)
    if hypothetical:
        cues.generate += 6
        cues.reasons.append(f"hypothetical '{hypothetical.group()}'")
    cues.generate += len(WEAK_CREATION_CUES.findall(doc.joined)) + 0.5 * len(PROMPT_CUES.findall(doc.joined))
    tokens = doc.tokens
    if any(t.norm == "new" and t.text != "New" and _norm(tokens, t.index + 1) not in PROPER_AFTER_NEW for t in tokens):
        cues.generate += 1.5
    absence = ABSENCE.search(doc.joined)
    if absence:
        cues.absence = True
        cues.search += 1
        cues.reasons.append(f"fallback phrase '{absence.group()}'")
    cues.either = EITHER.search(doc.joined) is not None
    cues.weak_fallback |= WEAK_FALLBACK.search(doc.joined) is not None or any(
        t.norm == "or" and any(doc.roles[k][0] for k in range(t.index + 1, min(t.index + 4, len(tokens))))
        for t in tokens
    )


def _score_question(cues: Cues, doc: Doc) -> None:
    """Questions about what exists lean towards search."""
    first = next((t for t in doc.tokens if not t.is_boundary), None)
    if first is not None and first.norm in QUESTION_STARTERS:
        cues.question += 2
    if "?" in doc.text:
        cues.question += 0.5


def decide_route(cues: Cues) -> tuple[Route, str]:
    """Pick the route from gathered evidence; return it with a one-line reason."""
    if cues.either:
        return "search_or_generate", "asks for an existing or a new one"
    # A question mark alone ("could you draw X if possible?") is not a search to fall back from.
    if cues.generate > 0 and (cues.absence or (cues.weak_fallback and cues.search > 0)):
        return "search_or_generate", "search cue with a generation fallback"
    search = cues.search + cues.question
    if cues.generate > search:
        return "generate", f"creation evidence {cues.generate:g} > search evidence {search:g}"
    if search > cues.generate:
        return "search", f"search evidence {search:g} > creation evidence {cues.generate:g}"
    if cues.first_verb_kind is not None:
        return ("generate" if cues.first_verb_kind == "generate" else "search"), "tie broken by the first verb"
    return "search", "no instruction verb; defaulting to search"


# ---------------------------------------------------------------------------
# Modality and count.
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    """The media noun a request is about: its modality, the words that decided it, and its token index."""

    modality: Modality
    words: str
    index: int


def find_head(doc: Doc) -> Head | None:
    """The first media noun that heads its phrase ('movie poster' -> poster -> image), else the first one."""
    tokens = doc.tokens
    positions = [t.index for t in tokens if t.norm in MEDIA and doc.verb(t) is None]
    for i in positions:
        nxt = _norm(tokens, i + 1)
        if nxt in MEDIA or nxt in GENERIC_HEADS or (nxt and not _is_function_word(nxt)):
            continue
        word, prev = tokens[i].norm, _norm(tokens, i - 1)
        if word in GENERIC_HEADS and (prev in MEDIA or prev in MODIFIER_MODALITY):
            return Head(MEDIA.get(prev) or MODIFIER_MODALITY[prev], f"{prev} {word}", i)
        return Head(MEDIA[word], word, i)
    if positions:
        return Head(MEDIA[tokens[positions[0]].norm], tokens[positions[0]].norm, positions[0])
    return None


def _is_function_word(word: str) -> bool:
    """True for words that end a noun phrase (prepositions, pronouns, verbs, punctuation)."""
    return (
        word in BOUNDARY or word in LINKERS or word in PRE_VERB or word in DETERMINERS or word in FUNCTION_WORDS
        or word in SEARCH_VERBS or word in GEN_VERBS or word in LINKER_VERBS
    )


def looks_like_prompt(params: GenerationParams, head: Head | None) -> bool:
    """True when parameters make a verbless request read like a generation prompt: size, duration, negative."""
    # "photos of the beach without people" filters a search; "a beach at sunset, no people" is a prompt.
    negative = params.negative_prompt is not None and (head is None or not head.words.endswith("s"))
    return params.width is not None or params.duration_s is not None or negative


def _is_indefinite_artwork(doc: Doc, i: int) -> bool:
    """True for 'a/an [adjectives] painting', not 'the logo' or 'our posters' (those already exist)."""
    if doc.tokens[i].norm not in ART_NOUNS:
        return False
    before = [t.norm for t in doc.tokens[max(0, i - 4) : i]]
    determiner = next((w for w in reversed(before) if w in DETERMINERS), None)
    return determiner not in DEFINITE


def decide_modality(doc: Doc, route: Route, cues: Cues, head: Head | None, has_duration: bool) -> tuple[Modality, str]:
    """Pick the modality: named media first, then the verb's own media, then hints, then the default."""
    made = VERB_MODALITY.get(cues.main_gen_verb or "") if route != "search" else None
    if made == "video":
        return "video", f"verb '{cues.main_gen_verb}' makes video"
    if head is not None:
        return head.modality, f"media word '{head.words}'"
    if made is not None:
        return made, f"verb '{cues.main_gen_verb}' makes {made}"
    sought = VERB_MODALITY.get(cues.first_verb or "") if cues.first_verb_kind == "search" else None
    if sought is not None:
        return sought, f"verb '{cues.first_verb}' implies {sought}"
    hint = next((MODALITY_HINTS[t.norm] for t in doc.tokens if t.norm in MODALITY_HINTS), None)
    if hint is not None:
        return hint, f"hint word implies {hint}"
    if has_duration:
        return "video", "a duration with no media word suggests video"
    if route == "search":
        return "any", "search names no kind of media"
    return "image", "generation names no kind of media; image by default"


def extract_count(tokens: list[Token]) -> tuple[int | None, str]:
    """Return the number of results asked for and the words it came from, or (None, '')."""
    for tok in tokens:
        i = tok.index
        if tok.norm in {"top", "best", "first", "last"} or (tok.norm == "up" and _norm(tokens, i + 1) == "to"):
            step = 2 if tok.norm == "up" else 1
            value, used = _parse_number(tokens, i + step)
            if value is not None:
                return value, " ".join(t.text for t in tokens[i : i + step + used])
        value, used = _parse_number(tokens, i)
        if value is None or not 0 < value <= 500 or _is_name_number(tokens, i):
            continue
        j = i + used
        if _norm(tokens, j) == "of" and _norm(tokens, j + 1) in {"them", "those", "these"}:
            return value, " ".join(t.text for t in tokens[i : j + 2])
        # A few adjectives may sit between number and noun: "5 different minimalist logos".
        for k in range(j, min(j + 4, len(tokens))):
            word = tokens[k].norm
            if word in COUNT_NOUNS:
                return value, " ".join(t.text for t in tokens[i : k + 1])
            if _is_function_word(word) or word.isdigit():
                break
    return None, ""


def _is_name_number(tokens: list[Token], i: int) -> bool:
    """True for a number that belongs to a name ('Apollo 11') rather than a count."""
    prev = tokens[i - 1] if i > 0 else None
    return prev is not None and prev.text[:1].isupper() and prev.norm not in VOCAB and prev.norm not in PRE_VERB


# ---------------------------------------------------------------------------
# Parameters.
# ---------------------------------------------------------------------------


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
    value = float(NUMBER_WORDS[amount]) if amount in NUMBER_WORDS else float(amount)
    return value * 60 if unit.startswith("min") else value


def _negative_text(text: str, m: re.Match[str]) -> tuple[str, int]:
    """The thing to avoid in a negative match and where it ends; ('', 0) when 'no' is not a negative."""
    before = text[max(0, m.start() - 40) : m.start()].split()
    if before and before[-1].lower().strip(",") in NEGATIVE_GUARD_BEFORE:
        return "", 0
    words: list[re.Match[str]] = []
    for tok in TOKEN_RE.finditer(m.group("neg")):
        word = correct_typo(tok.group().lower())
        if not words and word in NEGATIVE_GUARD_AFTER:
            return "", 0
        if word in CLAUSE_CUTTERS or word in TRAIL_FILLER or word in SEARCH_VERBS or word in GEN_VERBS:
            break
        words.append(tok)
    while words and words[-1].group().lower() in CONJUNCTIONS:
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


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """Replace spans with spaces so character offsets stay valid."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


# ---------------------------------------------------------------------------
# Query.
# ---------------------------------------------------------------------------


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
    if tokens[i].norm in CLAUSE_CUTTERS:
        return True
    if tokens[i].norm not in CONJUNCTIONS:
        return False
    ahead = tokens[i + 1 : i + 4]
    if _norm(tokens, i + 2) == "back" and _norm(tokens, i + 1) in {"fall", "falling"}:
        return True
    return any(doc.verb(t) or t.norm in FALLBACK_WORDS for t in ahead)


def _is_cue_clause(doc: Doc, clause: list[Token]) -> bool:
    """True when a clause carries instructions (a verb or fallback word) rather than more subject."""
    return any(t.norm in FALLBACK_WORDS or doc.verb(t) for t in clause)


def _strip_lead(doc: Doc, clause: list[Token], route: Route) -> list[Token]:
    """Drop leading instruction words and 'a photo of'-style containers from a clause."""
    strippable = CONTAINERS | (frozenset(MEDIA) if route == "search" else frozenset())
    i, dropped_verb, dropped_any, last_chunk = _lead_start(doc, clause), "", False, None
    while i < len(clause):
        tok = clause[i]
        if doc.verb(tok):
            dropped_verb, dropped_any, i = tok.norm, True, i + 1
        elif tok.norm in LEAD_FILLER and (dropped_any or tok.norm != "in"):
            dropped_any, i = True, i + 1
        elif dropped_any and (linker := _linker_length(clause, i, dropped_verb)):
            i += linker
        elif chunk := _container_chunk(clause, i, strippable, dropped_verb):
            dropped_any, i = True, i + chunk
            last_chunk = i - chunk if clause[i - chunk].norm in DETERMINERS else last_chunk
        else:
            break
    # When every word looked like scaffolding, a last "a voiceover" is the subject ("which videos have a voiceover").
    return clause[i:] if i < len(clause) or last_chunk is None else clause[last_chunk:]


def _lead_start(doc: Doc, clause: list[Token]) -> int:
    """Where instructions may start: after a tool phrase, or at an early verb ('any chance you could draw')."""
    norms = tuple(t.norm for t in clause[:3])
    phrase = next((p for p in LEAD_PHRASES if norms[: len(p)] == p), None)
    if phrase is not None:
        return len(phrase)
    early = next((k for k, t in enumerate(clause[:7]) if doc.verb(t) or t.norm in MEDIA), None)
    return early if early is not None and doc.verb(clause[early]) else 0


def _linker_length(clause: list[Token], i: int, dropped_verb: str) -> int:
    """Length of a linker at i ('of', 'that look like', 'for' after 'search'), else 0."""
    word, nxt = _norm(clause, i), _norm(clause, i + 1)
    if word == "for":
        return 1 if dropped_verb in SEARCH_FOR_VERBS else 0
    if word in {"that", "which", "who"} and nxt in LINKER_VERBS:
        return 3 if _norm(clause, i + 2) == "like" else 2
    if (word in {"similar", "related"} and nxt == "to") or (word == "looking" and nxt == "like"):
        return 2
    return 1 if word in LINKERS else 0


def _container_chunk(clause: list[Token], i: int, strippable: frozenset[str], dropped_verb: str) -> int:
    """Length of '[det] [count] [modifiers] container(s) [relative filler] [linker]' at i, else 0."""
    j, novelty_end, counted = _skip_determiners(clause, i)
    nouns_start = j
    while j < len(clause) and clause[j].norm in strippable:
        j += 1
    if j == nouns_start:
        # "a brand new illustration of X", "five sunset photos": keep the subject, drop count and novelty words;
        # but "the new product line" is the subject itself.
        return novelty_end - i if counted or _norm(clause, novelty_end) in MEDIA else 0
    while j < len(clause) and clause[j].norm in RELATIVE_FILLER:
        j += 1
    if j >= len(clause) or clause[j].norm in LEAD_FILLER or clause[j].norm in DETERMINERS:
        return j - i
    linker = _linker_length(clause, j, dropped_verb) or _chunk_linker(clause, i, j)
    return j - i + linker if linker else 0


def _chunk_linker(clause: list[Token], i: int, j: int) -> int:
    """Linkers that depend on the chunk: 'our library contains', 'matches for', 'similar images to'."""
    word, last_noun = clause[j].norm, clause[j - 1].norm
    if last_noun in LIBRARY_NOUNS and (word in LINKER_VERBS or word in {"for", "contain", "hold", "holds"}):
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
        value, used = _parse_number(clause, j)
        if value is not None:
            j += used
            # A number is the count only when a countable noun follows: "five sunset photos", not "three dogs".
            if any(t.norm in COUNT_NOUNS for t in clause[j : j + 4]):
                novelty_end, counted = j, True
        elif clause[j].norm in DETERMINERS or clause[j].norm in LEAD_MODIFIERS:
            j += 1
            if clause[j - 1].norm in NOVELTY_MODIFIERS:
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
    if words and words[-1].norm in TRAIL_CONTAINERS and rest and not any(
        t.norm in FUNCTION_WORDS or t.norm in LINKERS for t in rest
    ) and any(t.norm not in DETERMINERS for t in rest):
        return rest
    return words


def _tail_cut(doc: Doc, words: list[Token]) -> int:
    """How many trailing tokens of words are not subject, or 0."""
    norms = [t.norm for t in words[-6:]]
    if norms[-1] in TRAIL_FILLER or norms[-1] in CONJUNCTIONS:
        return 1
    phrase = next((p for p in TAIL_PHRASES if len(norms) > len(p) and tuple(norms[-len(p) :]) == p), None)
    if phrase is not None:
        return len(phrase)
    if len(words) > 2 and norms[-1] in {"it", "one", "them"} and doc.verb(words[-2]):
        return 2
    # "... in our library", "... from the sound archive"
    if norms[-1] in LIBRARY_NOUNS:
        place = next((k for k in range(len(norms) - 2, max(len(norms) - 5, -1), -1) if norms[k] in PLACE_PREPOSITIONS), None)
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
        t.norm in SCAFFOLD_WORDS or t.norm in DETERMINERS or t.norm in CONTAINERS or t.norm in NUMBER_WORDS
        or t.norm.isdigit() or (t.norm in COUNT_NOUNS and t.norm not in MEDIA)
        for t in words
    )


def extract_query(doc: Doc, route: Route, modality: Modality) -> str:
    """The subject of the request without instruction words, size or negative clause."""
    quoted = QUOTED_RE.search(doc.text)
    # A quote is the search text or the words to speak; in a picture prompt it is text to draw ("a sign saying 'open'").
    if quoted and not (route == "generate" and modality in {"image", "video"}):
        inner = (quoted.group("a") or quoted.group("b")).strip()
        if inner:
            return inner
    clauses = _clauses(doc)
    stripped = [_strip_tail(doc, _strip_lead(doc, c, route)) for c in clauses]
    stripped = [[] if _is_scaffold(s) else s for s in stripped]
    # Prefer the clause that names media or gives the instruction: "For our blog, draw a dragon".
    relevant = [k for k, s in enumerate(stripped) if s and any(t.norm in MEDIA or doc.verb(t) for t in clauses[k])]
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
# Routers.
# ---------------------------------------------------------------------------


class Router(Protocol):
    """Anything that turns a request into a Plan."""

    def plan(self, request: str) -> Plan:
        """Return the plan for request."""
        ...


class RuleRouter:
    """Local, deterministic router: keyword scores, verb position, question form and library cues."""

    def __init__(self, max_chars: int = MAX_REQUEST_CHARS) -> None:
        self.max_chars = max_chars

    def plan(self, request: str) -> Plan:
        """Return the plan for request; raise ValueError when it is empty."""
        if not request or not request.strip():
            raise ValueError("request is empty: say what to find or generate, e.g. 'find photos of a red car'")
        text, reasons = request.strip(), []
        if len(text) > self.max_chars:
            # Long pastes are analysed by their head so routing stays fast.
            text = text[: self.max_chars]
            reasons.append(f"request truncated to {self.max_chars} characters for analysis")
        found = extract_params(text)
        doc = Doc.parse(_blank(text, found.spans))
        reasons += [f"read '{t.text}' as '{t.norm}'" for t in doc.tokens if t.norm != t.text.lower().replace("’", "'")]
        head = find_head(doc)
        cues = gather_cues(doc, found.params, head)
        route, why_route = decide_route(cues)
        modality, why_modality = decide_modality(doc, route, cues, head, found.params.duration_s is not None)
        count, count_words = extract_count(doc.tokens)
        reasons += [f"route {route}: {why_route}", *cues.reasons, f"modality {modality}: {why_modality}"]
        if count is not None:
            reasons.append(f"count {count} from '{count_words}'")
        threshold = THRESHOLD_RE.search(text)
        return Plan(
            route=route,
            modality=modality,
            count=count,
            # A request that was all parameters ("512x512, no people") keeps its own words as the query.
            query=extract_query(doc, route, modality) or " ".join(text.split()),
            params=found.params,
            threshold=float(threshold.group(1)) if threshold else None,
            reasons=reasons,
        )


_DEFAULT_ROUTER = RuleRouter()


def route(request: str) -> Plan:
    """Return the plan for request using the default RuleRouter."""
    return _DEFAULT_ROUTER.plan(request)
