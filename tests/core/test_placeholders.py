"""Prompt templates: only declared `{name}` placeholders render, everything else is refused."""

from __future__ import annotations

import ast
import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.placeholders import (
    MAX_PLACEHOLDERS,
    MAX_TEMPLATE_LENGTH,
    Placeholder,
    TemplateError,
    Text,
    Variable,
    VariableSource,
    VariableType,
    check,
    join_list,
    parse,
    parse_variables,
    render,
)

ROOT = Path(__file__).resolve().parents[2]
SEED = "Create a beautiful {style} bouquet with {flowers} in {colors} colors for {occasion}"
SEED_NAMES = ["style", "flowers", "colors", "occasion"]
SEED_VALUES = {
    "style": "romantic",
    "flowers": ["roses", "peonies"],
    "colors": ["pink", "white"],
    "occasion": "wedding",
}
SECRET = "s3cret-value"
# Text that would betray an object's internals had a payload been evaluated.
LEAKS = ("<class", " object at ", "built-in", "method", "wrapper", "Traceback", SECRET)


def test_seed_example_renders_exactly():
    assert render(SEED, SEED_VALUES, allowed=SEED_NAMES) == (
        "Create a beautiful romantic bouquet with roses and peonies in pink and white colors "
        "for wedding"
    )


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], ""),
        (["roses"], "roses"),
        (["roses", "peonies"], "roses and peonies"),
        (["a", "b", "c"], "a, b and c"),
        (["a", "b", "c", "d"], "a, b, c and d"),
    ],
)
def test_lists_join_in_natural_english(items, expected):
    assert join_list(items) == expected
    assert render("{x}", {"x": items}, allowed=["x"]) == expected


def test_join_list_takes_another_conjunction():
    assert join_list(["red", "white"], conjunction="or") == "red or white"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("{0.__class__}", "format_syntax"),
        ("{x.__init__}", "format_syntax"),
        ("{x.__class__.__mro__}", "format_syntax"),
        ("{x[0]}", "format_syntax"),
        ("{x[__globals__]}", "format_syntax"),
        ("{x!r}", "format_syntax"),
        ("{x!s:>5}", "format_syntax"),
        ("{x:>99999999}", "format_syntax"),
        ("{x:{x}}", "nested"),
        ("{}", "empty"),
        ("{0}", "positional"),
        ("{12}", "positional"),
        ("{{x}", "unmatched_close"),
        ("{x{y}}", "nested"),
        ("{x", "unclosed"),
        ("x}", "unmatched_close"),
        ("{ x }", "space"),
        ("{x }", "space"),
        ("{X}", "invalid_name"),
        ("{__class__}", "invalid_name"),
        ("{x__}", "invalid_name"),
        ("{1x}", "invalid_name"),
        ("{x-y}", "invalid_name"),
        ("{x\ty}", "character"),
        ("{x\n}", "unclosed"),
    ],
)
def test_injection_payloads_are_refused_and_expose_nothing(payload, code):
    problems = check(payload, ["x", "y"])
    assert problems and problems[0].code == code
    with pytest.raises(TemplateError) as caught:
        render(payload, {"x": SECRET, "y": SECRET}, allowed=["x", "y"])
    assert caught.value.problems[0].code == code
    assert not [leak for leak in LEAKS if leak in str(caught.value)]


@pytest.mark.parametrize(
    "lookalike",
    [
        "{\uff58}",  # fullwidth x
        "{\u0445}",  # Cyrillic x
        "{\u0455tyle}",  # Cyrillic dze for s
        "{styl\u0435}",  # Cyrillic ie for e
        "{\u212a}",  # Kelvin sign, which lower() turns into k
        "{style\u200b}",  # zero-width space
        "{\u017ftyle}",  # long s, which upper() turns into S
    ],
)
def test_unicode_lookalike_names_are_refused(lookalike):
    [problem] = check(lookalike, ["x", "style", "k"])
    assert problem.code == "character"
    assert "U+" in problem.message


def test_fullwidth_braces_are_plain_text():
    assert render("\uff5bstyle\uff5d {style}", {"style": "wild"}, allowed=["style"]) == (
        "\uff5bstyle\uff5d wild"
    )


def test_unknown_placeholder_names_position_and_declared_variables():
    with pytest.raises(TemplateError) as caught:
        parse(SEED.replace("{colors}", "{colour}"), SEED_NAMES)
    assert str(caught.value) == (
        "Unknown placeholder {colour} at line 1, column 54: "
        "declared variables are colors, flowers, occasion, style. Did you mean {colors}?"
    )
    [problem] = caught.value.problems
    assert (problem.offset, problem.line, problem.column, problem.code) == (53, 1, 54, "unknown")


def test_unknown_placeholder_with_no_declared_variables_says_so():
    [problem] = check("{style}", [])
    assert problem.message.endswith("this template declares no variables.")


def test_positions_are_right_on_a_multiline_template():
    text = "Line one {style}\n\n  then {bad} and\n{x\nend }"
    problems = check(text, ["style"])
    assert [(p.code, p.line, p.column, p.offset) for p in problems] == [
        ("unknown", 3, 8, text.index("{bad}")),
        ("unclosed", 4, 1, text.index("{x")),
        ("unmatched_close", 5, 5, len(text) - 1),
    ]
    assert "at line 3, column 8:" in problems[0].message


def test_every_problem_is_reported_and_the_message_summarises_the_first_few():
    text = "{a} {b.c} {} {0} x} {d"
    with pytest.raises(TemplateError) as caught:
        parse(text, ["x"])
    codes = [p.code for p in caught.value.problems]
    assert codes == [
        "unknown",
        "format_syntax",
        "empty",
        "positional",
        "unmatched_close",
        "unclosed",
    ]
    message = str(caught.value)
    assert message.startswith("The template has 6 problems. Unknown placeholder {a}")
    assert message.endswith("And 3 more.")
    assert "{0}" not in message  # only the first three are spelled out


def test_escaped_braces_render_as_literal_braces():
    text = "{{style}} is literal, {style} is not; {{{style}}} wraps; }}{{"
    assert render(text, {"style": "boho"}, allowed=["style"]) == (
        "{style} is literal, boho is not; {boho} wraps; }{"
    )
    assert parse("{{}}", []).parts == (Text("{}"),)


def test_values_with_braces_are_inserted_verbatim_not_re_expanded():
    values = {"style": "{flowers} {0.__class__} {{x}}", "flowers": ["{style}", "}{"]}
    assert render("{style}|{flowers}", values, allowed=["style", "flowers"]) == (
        "{flowers} {0.__class__} {{x}}|{style} and }{"
    )


def test_parse_gives_parts_and_names_in_order_of_first_use():
    template = parse("A {b} and {a}, again {b}.", ["a", "b", "c"])
    assert template.names == ("b", "a")
    assert template.parts == (
        Text("A "),
        Placeholder("b", 2),
        Text(" and "),
        Placeholder("a", 10),
        Text(", again "),
        Placeholder("b", 21),
        Text("."),
    )
    assert render(template, {"a": "1", "b": "2"}) == "A 2 and 1, again 2."


def test_a_missing_value_is_an_error_naming_each_variable_once():
    with pytest.raises(TemplateError) as caught:
        render("{a} {b} {a} {c}", {"b": "x"}, allowed=["a", "b", "c"])
    assert [(p.code, p.offset) for p in caught.value.problems] == [
        ("missing_value", 0),
        ("missing_value", 12),
    ]
    assert str(caught.value) == (
        "2 values are missing. No value for {a} at line 1, column 1. "
        "No value for {c} at line 1, column 13."
    )


def test_missing_values_can_be_kept_or_left_empty():
    assert render("{a}-{b}", {"a": "1"}, allowed=["a", "b"], missing="keep") == "1-{b}"
    assert render("{a}-{b}", {"a": "1"}, allowed=["a", "b"], missing="empty") == "1-"
    with pytest.raises(ValueError):
        render("{a}", {"a": "1"}, allowed=["a"], missing="skip")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"), [(12, "12"), (12.0, "12"), (12.5, "12.5"), (("a", "b"), "a and b")]
)
def test_numbers_and_tuples_render_plainly(value, expected):
    assert render("{budget}", {"budget": value}, allowed=["budget"]) == expected


class Sneaky:
    def __str__(self) -> str:
        raise AssertionError("render must not call str() on arbitrary objects")

    __format__ = __repr__ = __str__  # type: ignore[assignment]


@pytest.mark.parametrize("value", [Sneaky(), True, float("nan"), float("inf"), [1, 2], None, b"x"])
def test_only_plain_values_are_accepted(value):
    with pytest.raises(InvalidInput, match=r"value for \{x\} must be text"):
        render("{x}", {"x": value}, allowed=["x"])


def test_a_parsed_template_is_checked_against_a_narrower_allowlist():
    template = parse("{a} {b}", ["a", "b"])
    with pytest.raises(TemplateError, match=r"Unknown placeholder \{b\}"):
        render(template, {"a": "1", "b": "2"}, allowed=["a"])


def test_rendering_text_needs_an_allowlist_of_names():
    with pytest.raises(TypeError):
        render("{a}", {"a": "1"})
    with pytest.raises(TypeError):
        check("{s}", "style")  # would otherwise allow {s}, {t}, {y}, {l} and {e}


@pytest.mark.parametrize("bad", ["Style", "a b", "", "x" * 41, "__class__", "\uff58"])
def test_declared_names_must_be_lowercase_snake_case(bad):
    with pytest.raises(InvalidInput, match="Declared variables"):
        check("{x}", ["x", bad])


def test_template_length_is_limited():
    assert check("a" * MAX_TEMPLATE_LENGTH, []) == []
    text = "a\n" * (MAX_TEMPLATE_LENGTH // 2) + "b"
    [problem] = check(text, [])
    assert problem.code == "too_long"
    assert (problem.offset, problem.line, problem.column) == (MAX_TEMPLATE_LENGTH, 10001, 1)
    assert f"{len(text):,} characters" in problem.message


def test_number_of_placeholders_is_limited():
    assert len(parse("{x}" * MAX_PLACEHOLDERS, ["x"]).parts) == MAX_PLACEHOLDERS
    problems = check("{x}" * (MAX_PLACEHOLDERS + 2), ["x"])
    assert [(p.code, p.offset) for p in problems] == [("too_many", 3 * MAX_PLACEHOLDERS)]


def test_a_template_full_of_stray_braces_reports_each_one():
    problems = check("x}" * 5000, [])
    assert len(problems) == 5000
    assert problems[-1].column == 10000


# --- random templates --------------------------------------------------------------------------

ALLOWED = ["x", "style", "x_0"]
TOKENS = [
    *"{}{}{}!:.[]0x_ \n",
    "{x}",
    "{style}",
    "{x_0}",
    "style",
    "x_0",
    "y",
    "\uff58",
    "é",
    "}}",
    "{{",
]
templates = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


def python_reading(text: str) -> list[tuple[str, str | None, str | None, str | None]] | None:
    """How str.format would read `text` (the test's independent oracle), None if it refuses."""
    try:
        return list(string.Formatter().parse(text))
    except ValueError:
        return None


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(templates)
def test_random_templates_parse_or_raise_template_error_with_true_positions(text):
    problems = check(text, ALLOWED)
    for p in problems:
        assert text[p.offset] in "{}"
        assert p.line == text.count("\n", 0, p.offset) + 1
        assert p.column == p.offset - (text.rfind("\n", 0, p.offset) + 1) + 1
        assert f"at line {p.line}, column {p.column}" in p.message
    try:
        template = parse(text, ALLOWED)
    except TemplateError as exc:
        assert list(exc.problems) == problems and problems
        return
    assert problems == []
    # Whatever Trellis accepts, Python reads the same way: plain names, no spec, no conversion.
    reading = python_reading(text)
    assert reading is not None
    values = {name: "<{" + name + "}>" for name in ALLOWED}
    expected = ""
    for literal, field, spec, conversion in reading:
        assert field is None or (field in ALLOWED and spec == "" and conversion is None)
        expected += literal + (values[field] if field is not None else "")
    assert render(template, values) == expected
    assert set(template.names) == {field for _, field, _, _ in reading if field is not None}


# --- no formatting machinery in the module ----------------------------------------------------

FORBIDDEN_METHODS = {"format", "format_map", "vformat", "substitute", "safe_substitute"}
FORBIDDEN_FUNCTIONS = {"eval", "exec", "compile", "format", "getattr", "__import__"}


def formatting_machinery(source: str) -> list[str]:
    """Calls and imports in `source` that could evaluate template text; empty when none."""
    tree = ast.parse(source)
    own_classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_METHODS | {"Template"}:
                found.append(f".{func.attr}(")
            elif isinstance(func, ast.Name) and func.id in FORBIDDEN_FUNCTIONS:
                found.append(f"{func.id}(")
            elif (
                isinstance(func, ast.Name)
                and func.id == "Template"
                and "Template" not in own_classes
            ):
                found.append("Template(")
        elif isinstance(node, ast.Import) and any(a.name == "string" for a in node.names):
            found.append("import string")
        elif isinstance(node, ast.ImportFrom) and node.module == "string":
            found.append("from string import")
    return found


def test_the_renderer_never_uses_python_formatting():
    source = (ROOT / "core" / "placeholders.py").read_text()
    assert formatting_machinery(source) == []


def test_the_formatting_check_finds_each_kind_of_call():
    bad = (
        "from string import Template\n"
        "import string\n"
        "t.format(x=1); t.format_map(v); eval(t); format(v, t)\n"
        "Template(t).substitute(v); string.Template(t)\n"
    )
    assert sorted(formatting_machinery(bad)) == sorted(
        [
            "from string import",
            "import string",
            ".format(",
            ".format_map(",
            "eval(",
            "format(",
            "Template(",
            ".substitute(",
            ".Template(",
        ]
    )


# --- variable declarations --------------------------------------------------------------------


def test_variables_round_trip_through_plain_dicts():
    variables = (
        Variable("style", VariableType.TEXT),
        Variable("flowers", VariableType.LIST, VariableSource.CATALOG, catalog="flowers"),
        Variable("mood", VariableType.TEXT, VariableSource.STYLE_PARAMETER, parameter="mood"),
        Variable("budget", VariableType.NUMBER),
    )
    stored = json.dumps([v.to_dict() for v in variables])
    assert parse_variables(stored) == variables
    assert parse_variables(json.loads(stored)) == variables
    assert variables[1].to_dict() == {
        "name": "flowers",
        "type": "list",
        "source": "catalog",
        "catalog": "flowers",
    }


@pytest.mark.parametrize(
    ("item", "error"),
    [
        ({"name": "Style", "type": "text"}, "not lowercase snake case"),
        ({"name": "x" * 41, "type": "text"}, "longer than 40"),
        ({"name": "__class__", "type": "text"}, "not lowercase snake case"),
        ({"type": "text"}, "needs a name"),
        ({"name": "style"}, "needs a type"),
        ({"name": "style", "type": "txt"}, "type must be one of text, list, number"),
        ({"name": "style", "type": "text", "source": "web"}, "source must be one of"),
        ({"name": "f", "type": "list", "source": "catalog"}, "catalog must be one of"),
        ({"name": "f", "type": "list", "source": "catalog", "catalog": "pets"}, "catalog must"),
        ({"name": "f", "type": "text", "catalog": "flowers"}, "only when the source is catalog"),
        ({"name": "m", "type": "text", "source": "style_parameter"}, "parameter must be one of"),
        ({"name": "style", "type": "text", "extra": 1}, "unknown variable fields: extra"),
        ({"name": 5, "type": "text"}, "name must be text"),
        ("style", "must be an object"),
    ],
)
def test_a_bad_variable_is_refused_with_its_number(item, error):
    with pytest.raises(InvalidInput, match="Variable 2: ") as caught:
        parse_variables([{"name": "ok", "type": "text"}, item])
    assert error in str(caught.value)


def test_every_bad_variable_is_reported_including_duplicates():
    with pytest.raises(InvalidInput) as caught:
        parse_variables(
            [
                {"name": "style", "type": "text"},
                {"name": "style", "type": "list"},
                {"name": "Bad", "type": "text"},
            ]
        )
    message = str(caught.value)
    assert "Variable 2: style is declared twice." in message
    assert "Variable 3: the name Bad" in message


@pytest.mark.parametrize(
    ("data", "error"),
    [("{not json", "not valid JSON"), ({"name": "x"}, "must be a list"), ([{}] * 51, "At most 50")],
)
def test_variables_must_be_a_json_list(data, error):
    with pytest.raises(InvalidInput, match=error):
        parse_variables(data)


def test_a_variable_built_from_strings_holds_the_enums():
    variable = Variable("style", "text")  # type: ignore[arg-type]
    assert variable.type is VariableType.TEXT and variable.source is VariableSource.FREE_TEXT
