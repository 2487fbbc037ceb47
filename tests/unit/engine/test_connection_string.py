"""ODBC connection-string escaping and redaction."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.connection_string import (
    build_connection_string,
    parse_connection_string,
    quote_value,
    redact,
)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "plain"),
        ("tcp:db.example.net,1433", "tcp:db.example.net,1433"),
        ("a;b", "{a;b}"),
        ("has space", "{has space}"),
        ("a}b", "{a}}b}"),
        ("{x}", "{{x}}}"),
        ("k=v", "{k=v}"),
        ("", "{}"),
        (";}{= ", "{;}}{= }"),
    ],
)
def test_quote_value(value, quoted):
    assert quote_value(value) == quoted


def test_build_joins_in_order_and_skips_none():
    text = build_connection_string(
        {"Driver": "/opt/lib/libmsodbcsql.so", "Server": "tcp:h,1", "UID": None, "Encrypt": True})
    assert text == "Driver=/opt/lib/libmsodbcsql.so;Server=tcp:h,1;Encrypt=yes"


def test_value_with_every_special_character_survives():
    value = "p;}{= w"
    text = build_connection_string([("Server", "h"), ("PWD", value), ("Database", "d b")])
    assert text == "Server=h;PWD={p;}}{= w};Database={d b}"
    assert parse_connection_string(text) == [("Server", "h"), ("PWD", value), ("Database", "d b")]


@pytest.mark.parametrize("key", ["", "1abc", "a;b", "a=b", "a{b"])
def test_invalid_keyword_rejected(key):
    with pytest.raises(ValueError, match="invalid ODBC connection-string keyword"):
        build_connection_string({key: "v"})


def test_duplicate_keyword_rejected_case_insensitively():
    with pytest.raises(ValueError, match="given twice"):
        build_connection_string([("Server", "a"), ("SERVER", "b")])


def test_unterminated_brace_is_an_error():
    with pytest.raises(ValueError, match="unterminated"):
        parse_connection_string("PWD={abc")


def test_redact_hides_secrets_only():
    text = build_connection_string({"Server": "h", "PWD": "s;cr}t", "AccessToken": "eyJ.x.y"})
    shown = redact(text)
    assert "s;cr" not in shown and "eyJ" not in shown
    assert shown == "Server=h;PWD=***;AccessToken=***"


@given(st.lists(st.tuples(st.sampled_from(["Server", "PWD", "Database", "App", "UID"]),
                          st.text(alphabet=st.characters(exclude_categories=["Cs"]))),
                unique_by=lambda kv: kv[0].lower()))
def test_build_parse_round_trip(pairs):
    # Unbraced values are trimmed by ODBC, so whitespace-only edge cases must be braced.
    assert parse_connection_string(build_connection_string(pairs)) == pairs
