"""Memory rules: admin phrases compile to safe patterns that find what a customer states."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.memory_rules import (
    DEFAULT_RULES,
    CompiledRules,
    Extracted,
    MemoryKind,
    RuleSpec,
    check_rule,
    compile_rules,
    extract,
    is_junk,
    parse_date_value,
)

RULES = compile_rules(DEFAULT_RULES)


def found(text: str, rules: CompiledRules = RULES) -> list[tuple[str, str, str]]:
    return [(m.kind, m.key, m.value) for m in extract(rules, text)]


def rule(phrase: str, key: str = "k", *, kind: str = "preference", rule_id: int = 7) -> RuleSpec:
    return RuleSpec(rule_id, "custom", kind, phrase, key, 0.5)


PREFERENCE, NAME, INTEREST = "preference", "personal_info", "interest"
NEGATIVE, ALLERGY, FAVORITE = "negative_preference", "allergy", "favorite"
DATE, RECIPIENT = "important_date", "recipient"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # I prefer X
        ("I prefer roses", (PREFERENCE, "prefers", "roses")),
        (
            "Hello! We usually prefer pale pink roses, thanks.",
            (PREFERENCE, "prefers", "pale pink roses"),
        ),
        ("I'd prefer the peonies please", (PREFERENCE, "prefers", "peonies")),
        ("Order 1234. I WOULD PREFER White Tulips", (PREFERENCE, "prefers", "White Tulips")),
        ("i really prefer ranunculus because they last", (PREFERENCE, "prefers", "ranunculus")),
        # My name is X
        ("My name is Ann", (NAME, "name", "Ann")),
        (
            "hello my name’s ann-marie o'brien and I need a bouquet",
            (NAME, "name", "Ann-Marie O'Brien"),
        ),
        ("Hi, call me Ludwig van Beethoven.", (NAME, "name", "Ludwig van Beethoven")),
        ("My name is Ann looking for roses", (NAME, "name", "Ann")),
        ("thanks, I'm called José from the bakery", (NAME, "name", "José")),
        # I'm working on X
        ("I'm working on a wedding for June", (INTEREST, "working on", "wedding for June")),
        ("we are currently working on our garden party", (INTEREST, "working on", "garden party")),
        # I always X
        (
            "I always order white roses for my wife on her birthday",
            (PREFERENCE, "always", "order white roses for my wife"),
        ),
        ("Hey, we always pick up in store", (PREFERENCE, "always", "pick up in store")),
        # Never X
        ("Never send carnations", (NEGATIVE, "carnations", "carnations")),
        ("I never want lilies.", (NEGATIVE, "lilies", "lilies")),
        (
            "Please never send me carnations, they make me sneeze",
            (NEGATIVE, "carnations", "carnations"),
        ),
        ("I would never use Baby’s Breath", (NEGATIVE, "baby's breath", "Baby's Breath")),
        # I'm allergic to X
        ("I'm allergic to lilies", (ALLERGY, "lilies", "lilies")),
        (
            "Oh and I am severely allergic to Pollen, so nothing fragrant",
            (ALLERGY, "pollen", "Pollen"),
        ),
        ("im allergic to chrysanthemums!", (ALLERGY, "chrysanthemums", "chrysanthemums")),
        # favorites
        ("My favorite flower is the peony", (FAVORITE, "favorite flower", "peony")),
        (
            "our favourite flowers are sunflowers and daisies",
            (FAVORITE, "favorite flower", "sunflowers and daisies"),
        ),
        ("My fav colour is pale blue", (FAVORITE, "favorite color", "pale blue")),
        ("MY FAVORITE COLORS ARE GOLD AND IVORY", (FAVORITE, "favorite color", "GOLD AND IVORY")),
        # recipient
        ("It's for my mother", (RECIPIENT, "mother", "mother")),
        ("these are a gift for my Mom and she loves peonies", (RECIPIENT, "mom", "mom")),
        ("it’s for my mother's birthday", (RECIPIENT, "mother", "mother")),
        ("The bouquet is for my mother-in-law", (RECIPIENT, "mother-in-law", "mother-in-law")),
        # I don't like X
        ("I don't like carnations", (NEGATIVE, "carnations", "carnations")),
    ],
)
def test_each_default_rule_finds_its_memory(text, expected):
    assert found(text) == [expected]


@pytest.mark.parametrize(
    ("text", "key", "value", "day"),
    [
        ("My wife's birthday is May 3", "wife's birthday", "--05-03", date(2000, 5, 3)),
        (
            "my wife’s birthday is on the 3rd of May 2027.",
            "wife's birthday",
            "2027-05-03",
            date(2027, 5, 3),
        ),
        ("My Mom's Birthday is 3 May", "mom's birthday", "--05-03", date(2000, 5, 3)),
        ("my birthday is May 3rd, 2027", "birthday", "2027-05-03", date(2027, 5, 3)),
        ("My birthday is Sept. 21", "birthday", "--09-21", date(2000, 9, 21)),
        ("my birthday is 2027-05-03", "birthday", "2027-05-03", date(2027, 5, 3)),
        ("my birthday is 5/3", "birthday", "--05-03", date(2000, 5, 3)),
        ("my birthday is 12/25/2026", "birthday", "2026-12-25", date(2026, 12, 25)),
        ("my birthday is Feb 29", "birthday", "--02-29", date(2000, 2, 29)),
        ("Our anniversary is on June 12", "anniversary", "--06-12", date(2000, 6, 12)),
        ("Our wedding anniversary is 12 June 2026", "anniversary", "2026-06-12", date(2026, 6, 12)),
    ],
)
def test_important_dates_are_parsed_to_real_days(text, key, value, day):
    assert extract(RULES, text) == [
        Extracted(None, MemoryKind.IMPORTANT_DATE, key, value, day, 0.9)
    ]


@pytest.mark.parametrize(
    "text",
    [
        "I never said I prefer roses",
        "Do I prefer roses?",
        "If I prefer roses, send them",
        "Only if... I prefer roses, send them",
        "I prefer roses, do you have any?",
        "I'm not allergic to lilies",
        "She prefers tulips",
        "My sister is allergic to lilies",
        "She said I prefer roses",
        "I prefer it",
        "I prefer the ones you sent",
        "I prefer not to have lilies",
        "I think I prefer roses",
        "I'm allergic to lilies?",
        "My name is",
        "My name is not important",
        "call me back please",
        "Can you call me tomorrow?",
        "My birthday is Feb 30",
        "My birthday is 2027-02-29",
        "My birthday is 13/45",
        "My birthday is tomorrow",
        "my wifes birthday is May 2027",
        "The flowers are for my wedding",
        "it's for my office",
        "Never mind",
        "I never got my package",
        "I've never seen that fee before",
        "Never send them to my old address",
        "I always said that",
        "We prefer something else",
        "I'm allergic to nothing, really",
        "My favorite color is",
        "I prefer so",
        "",
        "   ",
    ],
)
def test_nothing_is_found_in_tricky_or_empty_sentences(text):
    assert found(text) == []


def test_one_message_yields_several_memories():
    text = "Hi, my name is Ann. I’m allergic to lilies and my favorite color is blue."
    assert found(text) == [
        (NAME, "name", "Ann"),
        (ALLERGY, "lilies", "lilies"),
        (FAVORITE, "favorite color", "blue"),
    ]


def test_a_clause_opened_by_a_conjunction_or_punctuation_is_matched():
    text = "I never said that, I prefer roses; also I'm allergic to lilies — never send lilies"
    assert found(text) == [
        (PREFERENCE, "prefers", "roses"),
        (ALLERGY, "lilies", "lilies"),
        (NEGATIVE, "lilies", "lilies"),
    ]


def test_the_same_kind_and_key_keeps_the_first_statement():
    text = "Actually I prefer tulips. Actually I prefer roses."
    assert found(text) == [(PREFERENCE, "prefers", "tulips")]


def test_an_overlapping_match_of_higher_confidence_wins():
    # "always" is an adverb for "I prefer" and a rule word of "I always": one memory, not two.
    assert found("I always prefer roses") == [(PREFERENCE, "prefers", "roses")]
    assert found("I really always order roses") == [(PREFERENCE, "always", "order roses")]


def test_a_long_clause_is_cut_at_a_preposition_or_dropped():
    assert found("I prefer roses in pastel colors with a bit of greenery") == [
        (PREFERENCE, "prefers", "roses in pastel colors")
    ]
    assert found("I prefer big bright bold happy yellow sunny summer flowers") == []


def test_names_keep_their_casing_and_lowercase_names_are_title_cased():
    assert found("MY NAME IS ANN")[0][2] == "ANN"
    assert found("my name is ann smith")[0][2] == "Ann Smith"
    assert found("My name is McKenzie")[0][2] == "McKenzie"


def test_phrase_metacharacters_are_literal():
    rules = compile_rules([rule("I (really) like {value}.*", "likes")])
    assert found("I (REALLY) like roses.* ok", rules) == [("preference", "likes", "roses")]
    assert found("I really like roses", rules) == []
    assert found("I (really) like roses", rules) == []
    assert found("I xreallyx like roses.*", rules) == []


def test_an_empty_alternative_makes_a_choice_optional():
    rules = compile_rules(
        [rule("[please |]stop sending {value}", "{value}", kind="negative_preference")]
    )
    assert found("Stop sending lilies", rules) == [(NEGATIVE, "lilies", "lilies")]
    assert found("ok, please stop sending tulips", rules) == [(NEGATIVE, "tulips", "tulips")]


def test_key_templates_render_key_and_value():
    rules = compile_rules([rule("my {key} likes {value}", "{key} likes {value}")])
    assert found("My Sister Jane likes the Tulips", rules) == [
        ("preference", "sister jane likes tulips", "Tulips")
    ]


def test_a_key_alone_is_also_the_value_and_rule_ids_are_kept():
    rules = compile_rules([rule("I live in {key}", "city {key}", kind="personal_info", rule_id=42)])
    assert extract(rules, "I live in New York") == [
        Extracted(42, "personal_info", "city new york", "new york", None, 0.5)
    ]


def test_rules_run_highest_confidence_first_and_keep_their_specs():
    low = dataclasses.replace(rule("I adore {value}", "adores"), confidence=0.2)
    high = dataclasses.replace(rule("I adore {value}", "loves"), confidence=0.9)
    rules = compile_rules([low, high])
    assert rules.specs == (high, low)
    assert len(rules) == 2
    assert found("I adore roses", rules) == [("preference", "loves", "roses")]


@pytest.mark.parametrize(
    ("phrase", "message"),
    [
        ("I like {colour}", "column 8: unknown slot {colour}"),
        ("I [like|love {value}", 'column 3: unclosed "["'),
        ("I [like|{value}] it", "column 9: a slot inside a choice"),
        ("I [like|[love] {value}", "column 9: a choice inside a choice"),
        ("I [like|love {value", 'column 3: unclosed "["'),
        ("I like [a|b {value", "column 8: unclosed"),
        ("I like] {value}", 'column 7: unmatched "]"'),
        ("I like {value", 'column 8: unclosed "{"'),
        ("I like value}", 'column 13: unmatched "}"'),
        ("I | like {value}", 'column 3: "|" outside [ ]'),
        ("[I|we] like", "column 1: the phrase needs a slot"),
        ("{value}", "column 1: the phrase needs a literal word"),
        ("[I |]{value}", "column 1: the phrase needs a literal word"),
        ("x" * 195 + " {value}", "column 201: the phrase has 203 characters, at most 200"),
        ("my {key} {value}", "column 10: two slots need a literal word"),
        ("my {value} is {date}", "column 15: a second value slot {date}"),
        ("my {key} and {key} is {date}", "column 14: a second {key}"),
        ("[] x {value}", "column 1: empty choice"),
        ("I like\t\n{value}", "column 7: unexpected character U+0009"),
        ("", "column 1: the phrase is empty"),
    ],
)
def test_bad_phrases_are_refused_with_their_column(phrase, message):
    with pytest.raises(InvalidInput, match="Phrase, column") as refused:
        check_rule(kind="preference", phrase=phrase, key="k", confidence=0.5)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "mood"}, "Unknown memory kind 'mood'"),
        ({"confidence": 1.5}, "confidence must be a number from 0 to 1"),
        ({"confidence": float("nan")}, "confidence must be a number from 0 to 1"),
        ({"confidence": True}, "confidence must be a number from 0 to 1"),
        ({"key": "  "}, "The key is empty"),
        ({"key": "{key}"}, "uses {key} but the phrase has no {key} slot"),
        ({"key": "{value.__class__}"}, "Attribute access"),
        ({"key": "{city}"}, "Unknown placeholder {city}"),
        ({"key": "k" * 101}, "more than 100 characters"),
    ],
)
def test_bad_kinds_keys_and_confidences_are_refused(changes, message):
    args = {"kind": "preference", "phrase": "I like {value}", "key": "likes", "confidence": 0.5}
    with pytest.raises(InvalidInput) as refused:
        check_rule(**(args | changes))
    assert message in str(refused.value)


def test_compile_rules_names_the_invalid_rule():
    with pytest.raises(InvalidInput, match='Rule "custom": Phrase, column 8: unknown slot'):
        compile_rules([*DEFAULT_RULES, rule("I like {colour}")])


def test_default_rules_are_valid_and_cover_every_kind():
    for spec in DEFAULT_RULES:
        check_rule(kind=spec.kind, phrase=spec.phrase, key=spec.key, confidence=spec.confidence)
    assert {spec.kind for spec in DEFAULT_RULES} == set(MemoryKind)
    assert all(spec.id is None for spec in DEFAULT_RULES)


@pytest.mark.parametrize(
    ("value", "junk"),
    [
        ("roses", False),
        ("pale pink roses", False),
        ("2027-05-03", False),
        ("--05-03", False),
        ("Al", False),
        ("it", True),
        ("that one", True),
        ("the same", True),
        ("something else", True),
        ("x", True),
        ("42", True),
        ("!!", True),
        ("them to my office", True),
        ("one two three four five six seven", True),
        ("r" * 61, True),
        ("", True),
    ],
)
def test_is_junk(value, junk):
    assert is_junk(value) is junk


def test_adversarial_text_is_handled_in_linear_time():
    texts = [
        "I prefer " * 2000,
        "my " * 3000 + "is",
        "It's for my " + "a-" * 3000,
        "I prefer " + "a" * 20000,
        "My name is " + "Ann " * 3000,
        ("and I never send " + "x " * 10) * 5000,  # each match once looked for "?" to the end
        "".join(f"never send rose{i}, " for i in range(2000)),
        "5/" * 5000,
    ]
    start = time.perf_counter()
    for text in texts:
        extract(RULES, text)
    assert time.perf_counter() - start < 1.0


def test_compiled_rules_are_shared_across_threads():
    texts = ["I prefer roses", "My name is Ann", "It's for my mother"] * 50
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda t: found(t), texts))
    assert results == [found(t) for t in texts]


FRAGMENTS = [
    "I prefer", "my name is", "I'm allergic to", "never send", "I always", "it's for my",
    "my favorite color is", "my birthday is", "May 3", "5/3", "2027-02-30", "said", "if",
    "?", ".", ",", "and", "but", "it", "the", "roses", "Ann", "lilies", "really", "not",
    "’", "—", "\n", "{value}", "[a|b]", "ÉLODIE", "ALLERGİC", "PREFER", "ſend", "ß", "٣",
]  # fmt: skip
messages = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(" ".join),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_extract_never_raises_and_returns_no_junk(text):
    for memory in extract(RULES, text):
        assert memory.kind in set(MemoryKind)
        assert memory.key == memory.key.lower().strip() and memory.key
        assert not is_junk(memory.value)
        assert (memory.date_value is None) == (memory.kind != MemoryKind.IMPORTANT_DATE)


WITHOUT_PREFILTER = CompiledRules(tuple(dataclasses.replace(r, prefilter=()) for r in RULES.rules))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_the_prefilter_only_saves_time(text):
    assert extract(RULES, text) == extract(WITHOUT_PREFILTER, text)


def test_the_prefilter_folds_case_as_the_patterns_do():
    text = "I'M ALLERGİC TO LILIES"
    assert found(text) == found(text, WITHOUT_PREFILTER) == [(ALLERGY, "lilies", "LILIES")]


def test_a_phrase_may_start_with_its_slot():
    rules = compile_rules([rule("{value} [is|are] my favorite", "favorite", kind="favorite")])
    for text in [
        "peonies are my favorite",
        "Honestly peonies are my favorite!",
        "oh, peonies are my favorite",
    ]:
        assert found(text, rules) == [("favorite", "favorite", "peonies")], text
    assert found("I think peonies are my favorite", rules) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("May 3", ("--05-03", date(2000, 5, 3))),
        ("3rd of may, 2027", ("2027-05-03", date(2027, 5, 3))),
        (" 2027-05-03 ", ("2027-05-03", date(2027, 5, 3))),
        ("--05-03", ("--05-03", date(2000, 5, 3))),
        ("--02-29", ("--02-29", date(2000, 2, 29))),
        ("12/25", ("--12-25", date(2000, 12, 25))),
        ("--02-30", None),
        ("Feb 30", None),
        ("Maybe 3", None),
        ("tomorrow", None),
        ("", None),
    ],
)
def test_stored_and_written_dates_parse_to_real_days(text, expected):
    assert parse_date_value(text) == expected
