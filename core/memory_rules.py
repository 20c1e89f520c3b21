"""Customer memories from chat messages: admin-written phrase rules compiled to safe regexes.

Each shop's admins write rules as *phrases*, never as regular expressions: nothing they type is
regex syntax, so there is no injection, and every pattern is built here from bounded pieces
(the only repeated groups are "spaces, then a word", whose characters never overlap), so
matching stays linear in the text. The phrase language:

- **Words** match case-insensitively with any run of spaces (not line breaks) between them;
  every character is literal (`I (really) like {value}.*` matches those brackets and `.*`).
  Curly apostrophes count as `'`, and an apostrophe may be left out (`I'm` matches `Im`).
- **Choices** `[a|b|c]` of words; an empty alternative makes the choice optional
  (`[I |]never`). Choices do not nest and hold no slots.
- **Slots**, in braces. `{value}`: free text to the end of the clause, stopping at
  `. , ; : ! ? ( ) … —`, a line break, a lone "-", before but/because/since/though/although/so/
  when/if/who/which/unless/while, and before and/or/plus opening a new clause ("and my ...",
  "and I'm ..."); at most 6 words and 60 characters (a longer clause is cut before its last
  preposition among the first 6 words, or dropped). `{name}`: 1-3 words of letters, ' and -
  (after an optional title such as "Dr."), stopping before function words (and, but, I, from,
  here, please, tomorrow, ...); written with capitals it also ends at the first lowercase word.
  `{key}`: 1-3 words, stopping before prepositions and function words (on, in, at, for, with,
  to, from, is, was, and, next, this, ...). `{date}`: "May 3", "3 May", "May 3rd", "3rd of
  May", "May 3, 2027", "2027-05-03" or "5/3" (US month/day); the value is "2027-05-03", or
  "--05-03" without a year, and `date_value` that day (in 2000 when no year is given); a day
  that does not exist ("Feb 30") does not match. No slot starts with a clause opener (below).
- A phrase holds exactly one of {value}, {name}, {date}, or only a {key}; {key} at most once;
  two slots need a word between them; one word must be required (outside optional choices);
  at most 200 characters. Every refusal names its column.

Matching. A match starts a clause: at the start of the text, after . ! ? ; : , - — … or a line
break, or after an opener (and, but, so, also, because, though, oh, well, btw, ps, hi, hello,
hey, actually, honestly, anyway, plus, please, ok, yes, thanks, "hi there", "good morning",
...). After I, I'm, I'd, we, we're, we'd (and "am"/"are" after I/we) one adverb may follow
("I really prefer", "I'm severely allergic"); it is never the phrase's own next word, so
"I always {value}" keeps its "always". Skipped for every rule: a match in a sentence ending
with "?", one right after if/whether/unless, and one whose captured text reports speech
(said, say, told, tell, asked, think, thought, mean, meant, claimed, ...) or starts with "not".
Values lose quotes, edge punctuation, trailing fillers (please, thanks, too, as well, now) and
leading determiners (the, a, an, some, my, our, this, that, these, those); names keep their
casing, title-cased when written all lowercase. Keys are lowercase; with only a {key} the value
is the key. A recipient is a person: "my mother's birthday" gives "mother", an occasion or a
place ("my wedding", "my office") gives nothing. Junk values (`is_junk`) are dropped. Of
overlapping matches the higher confidence wins ("I always prefer roses" prefers roses rather
than always doing "prefer roses"); then one memory per (kind, key): the highest confidence,
the first in the text. Each rule first checks that the lowercased text holds its required
words (`in`), so most messages never reach a regex.

The key template may use `{key}` and `{value}` (core.placeholders syntax, never str.format).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from core import placeholders
from core.errors import InvalidInput

MAX_PHRASE_LENGTH = 200
MAX_KEY_TEMPLATE_LENGTH = 100
MAX_VALUE_WORDS = 6
MAX_VALUE_CHARS = 60


class MemoryKind(StrEnum):
    PREFERENCE = "preference"
    PERSONAL_INFO = "personal_info"
    INTEREST = "interest"
    NEGATIVE_PREFERENCE = "negative_preference"
    ALLERGY = "allergy"
    FAVORITE = "favorite"
    IMPORTANT_DATE = "important_date"
    RECIPIENT = "recipient"


@dataclass(frozen=True)
class RuleSpec:
    """One extraction rule as stored: `phrase` in the phrase language, `key` a key template."""

    id: int | None
    name: str
    kind: str
    phrase: str
    key: str
    confidence: float


@dataclass(frozen=True)
class Extracted:
    """One memory found in a message; `kind` is a MemoryKind (a str), `date_value` is set for
    {date} rules only."""

    rule_id: int | None
    kind: str
    key: str
    value: str
    date_value: date | None
    confidence: float


DEFAULT_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        None,
        "I prefer X",
        MemoryKind.PREFERENCE,
        "[I|we|I'd|we'd|I would|we would] prefer {value}",
        "prefers",
        0.9,
    ),
    RuleSpec(
        None,
        "My name is X",
        MemoryKind.PERSONAL_INFO,
        "[my name is|my name's|the name is|the name's|I'm called|I am called|call me] {name}",
        "name",
        0.95,
    ),
    RuleSpec(
        None,
        "I'm working on X",
        MemoryKind.INTEREST,
        "[I'm|I am|we're|we are] working on {value}",
        "working on",
        0.8,
    ),
    RuleSpec(None, "I always X", MemoryKind.PREFERENCE, "[I|we] always {value}", "always", 0.8),
    RuleSpec(
        None,
        "Never X",
        MemoryKind.NEGATIVE_PREFERENCE,
        "[I |we |I'd |we'd |I would |we would |]never [ever |]"
        "[want|send|use|include|add|put|give|get|buy|order|like|pick] [me |us |her |him |]{value}",
        "{value}",
        0.85,
    ),
    RuleSpec(
        None,
        "I'm allergic to X",
        MemoryKind.ALLERGY,
        "[I'm|I am|we're|we are] allergic to {value}",
        "{value}",
        0.95,
    ),
    RuleSpec(
        None,
        "My favorite flower is X",
        MemoryKind.FAVORITE,
        "[my|our] [favorite|favourite|fave|fav] [flower|flowers] [is|are] {value}",
        "favorite flower",
        0.9,
    ),
    RuleSpec(
        None,
        "My favorite color is X",
        MemoryKind.FAVORITE,
        "[my|our] [favorite|favourite|fave|fav] [color|colour|colors|colours] [is|are] {value}",
        "favorite color",
        0.9,
    ),
    RuleSpec(
        None,
        "My X is on <date>",
        MemoryKind.IMPORTANT_DATE,
        "my {key} is [on |on the |the |]{date}",
        "{key}",
        0.9,
    ),
    RuleSpec(
        None,
        "Our anniversary is <date>",
        MemoryKind.IMPORTANT_DATE,
        "our [wedding |]anniversary is [on |on the |the |]{date}",
        "anniversary",
        0.9,
    ),
    RuleSpec(
        None,
        "It's for my X",
        MemoryKind.RECIPIENT,
        "[it's|it is|they're|they are|these are|this is|that's|the flowers are|the bouquet is"
        "] [a gift |a present |]for my {key}",
        "{key}",
        0.8,
    ),
    RuleSpec(
        None,
        "I don't like X",
        MemoryKind.NEGATIVE_PREFERENCE,
        "[I|we] [don't|do not] [like|care for] {value}",
        "{value}",
        0.8,
    ),
)


# --- word lists -------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOP_WORDS = _words(
    "a an the and or but nor of to in on at for with from by as into about than then is are "
    "was were be been being am do does did have has had would could should can shall must "
    "i me my mine we us our ours you your yours he him his she her hers it its they them their "
    "this that these those some any all no not very just also too so there here please pls "
    "thanks thank yes yeah ok okay really quite rather if when while because since though "
    "what which who whom whose where why how just only even still again ever"
)
_GENERIC_WORDS = _words(
    "it that this these those something anything nothing everything stuff thing things them "
    "you one ones whatever none so too more less much many lot lots bit else other others same "
    "different kind sort type way all both either neither any some yet now here there well own "
    "mind someone anyone everyone somebody anybody nobody"
)
# A value starting with one of these points at something said elsewhere ("them to my office").
_REFERRING = _words(
    "it them him her me you us they he she we i its ones same that this these those"
)
_DETERMINERS = _words("the a an some my our this that these those")
_FILLERS = _words(
    "please pls thanks thx too lol haha tbh btw though anyway now nowadays lately x xx xo"
)
_FILLER_PAIRS = frozenset(
    {
        ("thank", "you"),
        ("as", "well"),
        ("right", "now"),
        ("these", "days"),
        ("this", "time"),
        ("for", "now"),
    }
)
_REPORTED = _words(
    "said say says saying told tell tells asked ask think thinks thought mean means meant "
    "claimed claims"
)
_HYPOTHETICAL = frozenset({"if", "whether", "unless"})
_PREPOSITIONS = _words("for on in at with to from by of about during before after")
_NAME_PARTICLES = _words("van von de da del della der di du la le ten ter bin al")
# A recipient is a person; "it's for my wedding" names an occasion or a place instead.
_NOT_PEOPLE = _words(
    "birthday wedding anniversary party event celebration dinner ceremony reception shower "
    "funeral service memorial graduation office desk home house place room table apartment "
    "flat garden balcony kitchen church shop store business company restaurant hotel order "
    "account website day"
)

_CLAUSE_WORDS = _words(
    "and but so also because though although oh well btw ps hi hello hey actually honestly "
    "anyway anyways plus please pls ok okay yes yeah then or sorry thanks"
)
_CLAUSE_PAIRS = frozenset(
    {"hi there", "hello there", "hey there", "good morning", "good afternoon", "good evening"}
)
_CLAUSE_PUNCTUATION = frozenset(".!?;:,-—–…\n")

_ADVERBS = _words(
    "really actually usually generally definitely also just mostly still do always truly "
    "honestly absolutely totally personally normally typically especially currently now very "
    "severely extremely highly super quite kinda mainly"
)
_SUBJECTS = frozenset({"i", "i'm", "i'd", "we", "we're", "we'd"})
_SUBJECT_VERBS = {"am": "i", "are": "we"}

_VALUE_STOPS = _words(
    "but because cause cuz since though although so when whenever if unless who which while whereas"
)
_NEW_SUBJECTS = _words(
    "i i'm i'd i've i'll my we we're we'd we've our it it's they they're she she's he he's "
    "you please also btw can could"
)
_NAME_STOPS = _words(
    "and but or nor i i'm i'd i've from here there by with at in on for to of please pls "
    "thanks thank so because if when btw not is was am are the a an my your me you we he she "
    "it they this that just also too who which today tomorrow tonight now later soon back "
    "anytime asap again maybe instead actually lol haha ok okay yes no"
)
_KEY_STOPS = _words(
    "on in at for with to from of by is was are were will would be and or but next this that "
    "the a an my our your his her their it it's i we you he she they today tomorrow tonight "
    "now soon please thanks so because since as if when who which coming falls has had have "
    "not also just last"
)


# --- regex building blocks (all quantifiers bounded, no quantified group inside another) -----


def _alternation(words: Iterable[str]) -> str:
    """Words as a regex alternation, longest first, each apostrophe optional."""
    ordered = sorted(set(words), key=lambda w: (-len(w), w))
    return "(?:" + "|".join(re.escape(w).replace("'", "'?") for w in ordered) + ")"


_WS = r"[^\S\n]{1,8}"
# A slot never starts with a word that opens a clause: "Honestly peonies are my favorite".
_OPENER = _alternation(_CLAUSE_WORDS) + r"(?![\w'\-])"
_VALUE_CHAR = "[^\\s.,;:!?()\\[\\]{}…—–]"
_VALUE_WORD = _VALUE_CHAR + "{1,30}(?!" + _VALUE_CHAR + ")"
_VALUE_STOP = (
    f"(?:{_alternation(_VALUE_STOPS)}|(?:and|or|plus|&){_WS}{_alternation(_NEW_SUBJECTS)}"
    "|-{1,3})(?![\\w'])"
)
_NAME_TITLE = rf"(?:(?:dr|mr|mrs|ms|mx|miss|prof)\.?{_WS})?"
_NAME_WORD = r"[^\W\d_](?:[^\W\d_]|['\-]){0,29}"
_NAME_STOP = _alternation(_NAME_STOPS) + r"(?![\w'\-])"
_KEY_WORD = r"[^\W_][\w'\-]{0,29}"
_KEY_STOP = _alternation(_KEY_STOPS) + r"(?![\w'\-])"
_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH = (
    "(?:january|february|march|april|may|june|july|august|september|october|november"
    "|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)"
)
_DAY = r"[0-3]?[0-9](?:st|nd|rd|th)?"
_YEAR = rf"(?:,?{_WS}[0-9]{{4}})?"
_DATE = (
    rf"(?:{_MONTH}\.?{_WS}{_DAY}{_YEAR}|{_DAY}(?:{_WS}of)?{_WS}{_MONTH}{_YEAR}"
    r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{1,2}/[0-9]{1,2}(?:/[0-9]{4})?)(?![\w/\-])"
)
_DATE_PARTS = re.compile(
    rf"(?P<m1>{_MONTH})\.?\s+(?P<d1>[0-9]{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<y1>[0-9]{{4}}))?"
    rf"|(?P<d2>[0-9]{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?\s+(?P<m2>{_MONTH})(?:,?\s+(?P<y2>[0-9]{{4}}))?"
    r"|(?P<y3>[0-9]{4})-(?P<m3>[0-9]{1,2})-(?P<d3>[0-9]{1,2})"
    r"|(?P<m4>[0-9]{1,2})/(?P<d4>[0-9]{1,2})(?:/(?P<y4>[0-9]{4}))?"
    r"|--(?P<m5>[0-9]{2})-(?P<d5>[0-9]{2})",
    re.IGNORECASE,
)
_ISO_DATE = re.compile(r"(?:[0-9]{4}|-)-[0-9]{2}-[0-9]{2}")


def _words_pattern(word: str, stop: str, most: int, end: str) -> str:
    """1..most words, none of them a stop word nor the first a clause opener, then `end`."""
    one = f"(?!{stop}){word}"
    return f"(?!{_OPENER}){one}(?:{_WS}{one}){{0,{most - 1}}}{end}"


def _value_pattern(most: int) -> str:
    return _words_pattern(_VALUE_WORD, _VALUE_STOP, most, "")


_SLOT_PATTERNS = {
    "name": _NAME_TITLE + _words_pattern(_NAME_WORD, _NAME_STOP, 3, r"(?![\w'\-])"),
    "key": _words_pattern(_KEY_WORD, _KEY_STOP, 3, r"(?![\w'\-])"),
    "date": _DATE,
}
# A trailing {value} may read past 6 words so a long clause can be cut at a preposition.
_VALUE_AT_END = _value_pattern(2 * MAX_VALUE_WORDS)
_VALUE_INSIDE = _value_pattern(MAX_VALUE_WORDS)
_SLOTS = ("value", "name", "key", "date")
_KINDS = frozenset(MemoryKind)
_VALUE_SLOTS = ("value", "name", "date")
_APOSTROPHE_MAP = {"’": "'", "‘": "'", "ʼ": "'", "′": "'"}
_APOSTROPHES = str.maketrans(_APOSTROPHE_MAP)
# The non-ASCII letters that re.IGNORECASE matches to an ASCII letter but str.lower does not
# lower to it (the Kelvin sign K lowers to k already): the prefilter must find what re finds.
_ASCII_FOLD = str.maketrans({**_APOSTROPHE_MAP, "İ": "i", "ı": "i", "ſ": "s"})
_WORD = re.compile(r"[\w']+")
_NOT_FRAGMENT = re.compile(r"[^\x00-\x7f]|'")
_SENTENCE_END = re.compile(r"[.!?\n]")


# --- the phrase language ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Space:
    pass


@dataclass(frozen=True)
class _Literal:
    text: str


@dataclass(frozen=True)
class _Choice:
    options: tuple[tuple[_Space | _Literal, ...], ...]
    column: int


@dataclass(frozen=True)
class _Slot:
    name: str
    column: int


_Token = _Space | _Literal | _Choice | _Slot
_SPACE = _Space()
_SPECIAL = "[]{}|"


def _refuse(problem: str, column: int) -> InvalidInput:
    return InvalidInput(f"Phrase, column {column}: {problem}.")


def _tokens(phrase: str) -> list[_Token]:
    """The phrase split into spaces, literal runs, choices and slots; refuses bad syntax."""
    tokens: list[_Token] = []
    pos = 0
    while pos < len(phrase):
        char = phrase[pos]
        if char.isspace():
            end = _run_end(phrase, pos, lambda c: c.isspace())
            tokens.append(_SPACE)
        elif char == "{":
            end, slot = _slot(phrase, pos)
            tokens.append(slot)
        elif char == "[":
            end, choice = _choice(phrase, pos)
            tokens.append(choice)
        elif char in "]}|":
            raise _refuse(_STRAY[char], pos + 1)
        else:
            end = _run_end(phrase, pos, lambda c: not c.isspace() and c not in _SPECIAL)
            tokens.append(_Literal(phrase[pos:end]))
        pos = end
    return tokens


def _shown(text: str) -> str:
    """Admin text fit to quote in a message: control characters escaped, length capped."""
    safe = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text[:30])
    return safe + ("…" if len(text) > 30 else "")


_STRAY = {
    "]": 'unmatched "]" (a choice is written [a|b])',
    "}": 'unmatched "}" (a slot is written {value})',
    "|": '"|" outside [ ] (alternatives are written [a|b])',
}


def _run_end(text: str, pos: int, belongs: Callable[[str], bool]) -> int:
    while pos < len(text) and belongs(text[pos]):
        pos += 1
    return pos


def _slot(phrase: str, start: int) -> tuple[int, _Slot]:
    end = start + 1
    while end < len(phrase) and phrase[end] not in _SPECIAL:
        end += 1
    if end == len(phrase) or phrase[end] != "}":
        raise _refuse('unclosed "{" (a slot is written {value})', start + 1)
    name = phrase[start + 1 : end]
    if name not in _SLOTS:
        known = "{value}, {name}, {key} and {date}"
        raise _refuse(f"unknown slot {{{_shown(name)}}} (the slots are {known})", start + 1)
    return end + 1, _Slot(name, start + 1)


def _choice(phrase: str, start: int) -> tuple[int, _Choice]:
    end = start + 1
    while end < len(phrase) and phrase[end] not in "[]{}":
        end += 1
    if end == len(phrase) or "]" not in phrase[end:]:
        raise _refuse('unclosed "["', start + 1)
    if phrase[end] != "]":
        what = "a choice inside a choice" if phrase[end] == "[" else "a slot inside a choice"
        raise _refuse(f"{what} is not allowed", end + 1)
    options = tuple(_option(text) for text in phrase[start + 1 : end].split("|"))
    if all(not option for option in options):
        raise _refuse("empty choice [ ]", start + 1)
    return end + 1, _Choice(options, start + 1)


def _option(text: str) -> tuple[_Space | _Literal, ...]:
    """One alternative of a choice: its words, each followed by its space; blank is empty."""
    parts: list[_Space | _Literal] = []
    for piece in re.split(r"(\s+)", text):
        if piece and piece.isspace():
            if parts:
                parts.append(_SPACE)
        elif piece:
            parts.append(_Literal(piece))
    return tuple(parts)


def _check_phrase(phrase: str) -> list[_Token]:
    """The phrase's tokens once every rule of the language holds."""
    if not phrase.strip():
        raise _refuse("the phrase is empty", 1)
    if len(phrase) > MAX_PHRASE_LENGTH:
        raise _refuse(
            f"the phrase has {len(phrase)} characters, at most {MAX_PHRASE_LENGTH} are allowed",
            MAX_PHRASE_LENGTH + 1,
        )
    odd = next((i for i, c in enumerate(phrase) if not c.isprintable() and c != " "), None)
    if odd is not None:
        raise _refuse(f"unexpected character U+{ord(phrase[odd]):04X}", odd + 1)
    tokens = _tokens(phrase.translate(_APOSTROPHES))
    _check_slots(tokens)
    if not _required(tokens):
        raise _refuse(
            "the phrase needs a literal word outside optional choices "
            "(a choice with an empty alternative)",
            1,
        )
    return tokens


def _check_slots(tokens: Sequence[_Token]) -> None:
    slots = [t for t in tokens if isinstance(t, _Slot)]
    if not slots:
        raise _refuse("the phrase needs a slot: {value}, {name}, {date} or {key}", 1)
    valued = [s for s in slots if s.name in _VALUE_SLOTS]
    if len(valued) > 1:
        raise _refuse(
            f"a second value slot {{{valued[1].name}}}; a phrase holds one of "
            "{value}, {name} or {date}",
            valued[1].column,
        )
    keys = [s for s in slots if s.name == "key"]
    if len(keys) > 1:
        raise _refuse("a second {key}; a phrase holds at most one", keys[1].column)
    previous: _Token | None = None
    for token in tokens:
        if isinstance(token, _Space):
            continue
        if isinstance(token, _Slot) and isinstance(previous, _Slot):
            raise _refuse("two slots need a literal word between them", token.column)
        previous = token


# --- compiling a phrase to a regex ------------------------------------------------------------


def _regex(tokens: Sequence[_Token]) -> str:
    parts: list[str] = []
    for index, token in enumerate(tokens):
        rest = tokens[index + 1 :]
        if isinstance(token, _Space):
            parts.append(_WS)
        elif isinstance(token, _Literal):
            parts.append(_literal_regex(token, tokens[:index], rest))
        elif isinstance(token, _Choice):
            options = (_option_regex(option, rest) for option in token.options)
            parts.append("(?:" + "|".join(options) + ")")
        else:
            pattern = _SLOT_PATTERNS.get(token.name, _VALUE_AT_END if not rest else _VALUE_INSIDE)
            parts.append(f"(?P<{token.name}>{pattern})")
    return "".join(parts)


def _option_regex(option: Sequence[_Space | _Literal], rest: Sequence[_Token]) -> str:
    parts: list[str] = []
    for index, token in enumerate(option):
        if isinstance(token, _Space):
            parts.append(_WS)
        else:
            parts.append(_literal_regex(token, option[:index], [*option[index + 1 :], *rest]))
    return "".join(parts)


def _literal_regex(token: _Literal, before: Sequence[_Token], rest: Sequence[_Token]) -> str:
    """Each character literal (apostrophes optional), then an adverb after a subject word."""
    text = "".join("'?" if c == "'" else re.escape(c) for c in token.text)
    if token.text[-1].isalnum() and not rest:
        text += r"(?!\w)"
    if _is_subject(token, before) and rest and isinstance(rest[0], _Space):
        adverbs = sorted(_ADVERBS - _next_words(rest))
        text += f"(?:{_WS}(?:{'|'.join(adverbs)})(?![\\w']))?"
    return text


def _is_subject(token: _Literal, before: Sequence[_Token]) -> bool:
    word = token.text.lower()
    if word in _SUBJECTS:
        return True
    earlier = [t.text.lower() for t in before if isinstance(t, _Literal)]
    return word in _SUBJECT_VERBS and earlier[-1:] == [_SUBJECT_VERBS[word]]


def _next_words(rest: Sequence[_Token]) -> set[str]:
    """The lowercase words that can come next in the phrase (so an adverb never steals one)."""
    for index, token in enumerate(rest):
        if isinstance(token, _Literal):
            return {token.text.lower()}
        if isinstance(token, _Choice):
            words: set[str] = set()
            for option in token.options:
                literal = next((t for t in option if isinstance(t, _Literal)), None)
                words |= {literal.text.lower()} if literal else _next_words(rest[index + 1 :])
            return words
        if isinstance(token, _Slot):
            return set()
    return set()


def _required(tokens: Sequence[_Token]) -> list[tuple[str, ...]]:
    """For each required word or choice, the strings of which a match holds one."""
    required: list[tuple[str, ...]] = []
    for token in tokens:
        if isinstance(token, _Literal):
            required.append((_fragment([token]),))
        elif isinstance(token, _Choice):
            fragments = [_fragment(option) for option in token.options]
            if all(fragments):
                required.append(_minimal(fragments))
    return [r for r in required if all(any(c.isalnum() for c in s) for s in r)]


def _prefilter(tokens: Sequence[_Token]) -> tuple[tuple[str, ...], ...]:
    """Sets of strings of which the lowercased text must hold one each, most selective first;
    one-letter words ("I") are left out, as nearly every message holds them."""
    found = [r for r in _required(tokens) if min(map(len, r)) >= 2]
    if any(isinstance(t, _Slot) and t.name == "date" for t in tokens):
        found.append(tuple("0123456789"))
    return tuple(sorted(found, key=lambda r: -min(map(len, r))))


def _fragment(option: Sequence[_Token]) -> str:
    """The longest piece of the option's words without an apostrophe (it may be left out) or a
    non-ASCII letter (re's case folding of those differs from str.lower): a match holds it."""
    pieces = [
        piece
        for token in option
        if isinstance(token, _Literal)
        for piece in _NOT_FRAGMENT.split(token.text.lower())
    ]
    return max(pieces, key=len, default="")


def _minimal(fragments: Iterable[str]) -> tuple[str, ...]:
    """Drop each fragment containing another: finding the shorter one is enough."""
    unique = sorted(set(fragments), key=len)
    kept: list[str] = []
    for fragment in unique:
        if not any(k in fragment for k in kept):
            kept.append(fragment)
    return tuple(kept)


# --- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    spec: RuleSpec
    kind: MemoryKind
    pattern: re.Pattern[str]
    prefilter: tuple[tuple[str, ...], ...]
    slots: tuple[str, ...]
    key_template: placeholders.Template

    def may_match(self, lowered: str) -> bool:
        # Plain loops: this runs for every rule on every message, generators cost twice as much.
        for group in self.prefilter:
            for text in group:
                if text in lowered:
                    break
            else:
                return False
        return True


@dataclass(frozen=True)
class CompiledRules:
    """Rules ready for `extract`, highest confidence first; immutable, shared across threads."""

    rules: tuple[_Rule, ...]

    @property
    def specs(self) -> tuple[RuleSpec, ...]:
        return tuple(rule.spec for rule in self.rules)

    def __len__(self) -> int:
        return len(self.rules)


def check_rule(*, kind: str, phrase: str, key: str, confidence: float) -> None:
    """Raise InvalidInput, with a message fit for the admin, unless the rule would compile."""
    _compile_parts(kind=kind, phrase=phrase, key=key, confidence=confidence)


def compile_rules(specs: Iterable[RuleSpec]) -> CompiledRules:
    """Compile rule specs once; an invalid spec raises InvalidInput naming the rule."""
    rules = []
    for spec in specs:
        try:
            rules.append(_compile(spec))
        except InvalidInput as exc:
            raise InvalidInput(f'Rule "{spec.name}": {exc}') from None
    rules.sort(key=lambda rule: -rule.spec.confidence)  # stable: equal ones keep their order
    return CompiledRules(tuple(rules))


def _compile(spec: RuleSpec) -> _Rule:
    tokens, template = _compile_parts(
        kind=spec.kind, phrase=spec.phrase, key=spec.key, confidence=spec.confidence
    )
    slots = tuple(t.name for t in tokens if isinstance(t, _Slot))
    pattern = re.compile(_regex(tokens), re.IGNORECASE)
    return _Rule(spec, MemoryKind(spec.kind), pattern, _prefilter(tokens), slots, template)


def _compile_parts(
    *, kind: str, phrase: str, key: str, confidence: float
) -> tuple[list[_Token], placeholders.Template]:
    if kind not in _KINDS:
        kinds = ", ".join(k.value for k in MemoryKind)
        raise InvalidInput(f"Unknown memory kind {kind!r}; kinds are {kinds}.")
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not (math.isfinite(confidence) and 0 <= confidence <= 1)
    ):
        raise InvalidInput("The confidence must be a number from 0 to 1.")
    if not isinstance(phrase, str) or not isinstance(key, str):
        raise InvalidInput("The phrase and the key must be text.")
    tokens = _check_phrase(phrase)
    slots = {t.name for t in tokens if isinstance(t, _Slot)}
    return tokens, _key_template(key, has_key_slot="key" in slots)


def _key_template(key: str, *, has_key_slot: bool) -> placeholders.Template:
    if not key.strip():
        raise InvalidInput("The key is empty; write a key such as prefers, {value} or {key}.")
    if len(key) > MAX_KEY_TEMPLATE_LENGTH:
        raise InvalidInput(f"The key has more than {MAX_KEY_TEMPLATE_LENGTH} characters.")
    try:
        template = placeholders.parse(key, ("key", "value"))
    except placeholders.TemplateError as exc:
        raise InvalidInput(f"Key: {exc}") from None
    if "key" in template.names and not has_key_slot:
        raise InvalidInput("The key uses {key} but the phrase has no {key} slot.")
    return template


# --- extraction -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    memory: Extracted
    start: int
    end: int
    order: int


def extract(rules: CompiledRules, text: str) -> list[Extracted]:
    """The memories one customer message states, in order of appearance."""
    if text.isascii():
        normal, lowered = text, text.lower()
    else:
        normal, lowered = text.translate(_APOSTROPHES), text.translate(_ASCII_FOLD).lower()
    candidates = [(order, r) for order, r in enumerate(rules.rules) if r.may_match(lowered)]
    if not candidates:
        return []
    sentences = _Sentences.of(normal)
    found: list[_Found] = []
    for order, rule in candidates:
        found.extend(_matches(rule, normal, order, sentences))
    return [f.memory for f in _best(found)]


@dataclass(frozen=True)
class _Sentences:
    """Where the message's sentences end, found once so each match looks its end up in log n."""

    ends: list[int]
    marks: str

    @classmethod
    def of(cls, text: str) -> _Sentences:
        stops = list(_SENTENCE_END.finditer(text))
        return cls([m.start() for m in stops], "".join(m.group() for m in stops))

    def is_question(self, end: int) -> bool:
        """Whether the sentence holding text[...:end] ends with "?"."""
        index = bisect_left(self.ends, end)
        return index < len(self.marks) and self.marks[index] == "?"


def _matches(rule: _Rule, text: str, order: int, sentences: _Sentences) -> list[_Found]:
    found: list[_Found] = []
    pos = 0
    while (match := rule.pattern.search(text, pos)) is not None:
        start, end = match.span()
        if not _starts_clause(text, start):
            pos = start + 1  # a later, overlapping start may still open a clause
            continue
        if not sentences.is_question(end):
            memory = _memory(rule, match, text)
            if memory is not None:
                found.append(_Found(memory, start, end, order))
        pos = max(end, start + 1)
    return found


def _best(found: list[_Found]) -> list[_Found]:
    """Overlapping matches: the higher confidence wins; then one per (kind, key)."""
    kept: list[_Found] = []  # disjoint spans in order of start
    starts: list[int] = []
    seen: set[tuple[str, str]] = set()
    for f in sorted(found, key=lambda f: (-f.memory.confidence, f.order, f.start)):
        identity = (f.memory.kind, f.memory.key)
        index = bisect_right(starts, f.start)
        if (
            identity in seen
            or (index > 0 and kept[index - 1].end > f.start)
            or (index < len(kept) and kept[index].start < f.end)
        ):
            continue
        seen.add(identity)
        starts.insert(index, f.start)
        kept.insert(index, f)
    return kept


def _starts_clause(text: str, start: int) -> bool:
    head = text[max(0, start - 32) : start]
    trimmed = head.rstrip()
    if not trimmed:
        return True
    if trimmed[-1] in _CLAUSE_PUNCTUATION or "\n" in head[len(trimmed) :]:
        return True
    if len(trimmed) == len(head):  # the match starts inside a word
        return False
    words = trimmed.lower().split()[-2:]
    return words[-1] in _CLAUSE_WORDS or " ".join(words) in _CLAUSE_PAIRS


def _memory(rule: _Rule, match: re.Match[str], text: str) -> Extracted | None:
    if _is_hypothetical(text, match.start()):
        return None
    captured = match.groupdict()
    if any(_reported_or_negated(captured[s]) for s in rule.slots):
        return None
    key_text = _clean_key(captured["key"]) if "key" in rule.slots else None
    value, when = _value(rule, captured, key_text)
    if rule.kind == MemoryKind.RECIPIENT:
        value = _person(value)
        key_text = _person(key_text) if key_text is not None else None
    if not value or (when is None and is_junk(value)):
        return None
    rendered = placeholders.render(rule.key_template, {"key": key_text or "", "value": value})
    key = _clean_key(rendered)
    if not key:
        return None
    return Extracted(rule.spec.id, rule.kind, key, value, when, rule.spec.confidence)


def _is_hypothetical(text: str, start: int) -> bool:
    words = _WORD.findall(text, max(0, start - 24), start)
    return bool(words) and words[-1].lower() in _HYPOTHETICAL


def _reported_or_negated(captured: str | None) -> bool:
    if not captured:
        return False
    words = _WORD.findall(captured.lower())
    return bool(words) and (words[0] == "not" or not _REPORTED.isdisjoint(words))


def _value(
    rule: _Rule, captured: dict[str, str | None], key_text: str | None
) -> tuple[str | None, date | None]:
    if "date" in rule.slots:
        return parse_date_value(captured["date"] or "") or (None, None)
    if "name" in rule.slots:
        return _clean_name(captured["name"] or ""), None
    if "value" in rule.slots:
        return _clean_value(captured["value"] or ""), None
    return key_text, None


# --- normalizing captured text ----------------------------------------------------------------

_EDGE_PUNCTUATION = " \t'`*_.,;:!?-–—…"
_NO_QUOTES = str.maketrans(dict.fromkeys('"“”«»'))


def _clean_value(raw: str) -> str | None:
    words = raw.translate(_NO_QUOTES).strip(_EDGE_PUNCTUATION).split()
    while words and words[0].lower() in _DETERMINERS:
        words.pop(0)
    while words:
        last = tuple(w.lower().strip(_EDGE_PUNCTUATION) for w in words[-2:])
        if last in _FILLER_PAIRS:
            del words[-2:]
        elif last[-1] in _FILLERS:
            words.pop()
        else:
            break
    if len(words) > MAX_VALUE_WORDS:
        words = _cut_at_preposition(words)
    value = " ".join(words).strip(_EDGE_PUNCTUATION)
    return value if 0 < len(value) <= MAX_VALUE_CHARS else None


def _cut_at_preposition(words: list[str]) -> list[str]:
    """A long clause up to its last preposition within the first words, or nothing."""
    for index in range(MAX_VALUE_WORDS, 0, -1):
        if words[index].lower() in _PREPOSITIONS:
            return words[:index]
    return []


def _clean_name(raw: str) -> str | None:
    words = raw.split()
    if words and words[0][0].isupper():  # written with capitals: "Ann looking for" is Ann
        kept = words[:1]
        for index, word in enumerate(words[1:], start=1):
            following = words[index + 1 : index + 2]
            if word[0].isupper() or (
                word in _NAME_PARTICLES and following and following[0][0].isupper()
            ):
                kept.append(word)
            else:
                break
        words = kept
    name = " ".join(w.strip("'-") for w in words).strip()
    if name == name.lower():
        return name.title()
    return name


def _clean_key(raw: str | None) -> str:
    return " ".join((raw or "").lower().split()).strip(_EDGE_PUNCTUATION)


def _person(text: str | None) -> str | None:
    """A recipient: "mother's birthday" is the mother; an occasion or a place is none."""
    if not text:
        return None
    head, _, _ = text.partition("'s ")
    if not _NOT_PEOPLE.isdisjoint(head.lower().split()):
        return None
    return head


def parse_date_value(text: str) -> tuple[str, date] | None:
    """A date as {date} reads it, or as a stored value ("--05-03", "2027-05-03"): the value
    ("2027-05-03", or "--05-03" without a year) and the day; None unless a real day."""
    parts = _DATE_PARTS.fullmatch(" ".join(text.split()))
    if parts is None:
        return None
    given = {k[0]: v for k, v in parts.groupdict().items() if v is not None}
    month_text = given["m"].lower()
    month = int(month_text) if month_text.isdigit() else _MONTHS.get(month_text[:3])
    year = int(given["y"]) if "y" in given else None
    try:
        when = date(year or 2000, month or 0, int(given["d"]))
    except ValueError:
        return None
    if year is None:
        return f"--{when.month:02d}-{when.day:02d}", when
    return when.isoformat(), when


def is_junk(value: str) -> bool:
    """True when a value says nothing: too short or long, only stop or generic words, a pronoun
    or "ones"/"same"/"those" first, or no letters (ISO dates excepted)."""
    if _ISO_DATE.fullmatch(value):
        return False
    if len(value) > MAX_VALUE_CHARS or sum(c.isalpha() for c in value) < 2:
        return True
    words = _WORD.findall(value.lower())
    if not words or len(value.split()) > MAX_VALUE_WORDS or words[0] in _REFERRING:
        return True
    return all(w in _STOP_WORDS or w in _GENERIC_WORDS for w in words)
