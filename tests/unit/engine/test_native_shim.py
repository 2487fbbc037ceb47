"""The native ODBC token shim: its export list, its connection-string surgery, its locator.

The surgery is tested against the C code itself: `native/odbc_shim/connstr.c` (which has
no ODBC dependency) is compiled here into a small test-only library and called through
ctypes. The shim library proper exports only the ODBC entry points.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import token_struct

import engine
from engine.connection_string import build_connection_string, parse_connection_string
from engine.driver import find_driver
from engine.errors import DriverNotFoundError
from engine.native_shim import ENV_SHIM_TARGET, SHIM_LIBRARY, prepare_environment, shim_path

ROOT = Path(__file__).resolve().parents[3]
SHIM_SOURCES = ROOT / "native" / "odbc_shim"

# enum shim_connstr_status (connstr.h)
OK, UNTERMINATED_BRACE, TEXT_AFTER_BRACE, EMPTY_TOKEN, NO_MEMORY, BAD_BULK_COPY = range(6)


def _exported(path: Path) -> set[str]:
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run([nm, "-D", "--defined-only", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_shim_exports_exactly_the_real_drivers_odbc_functions():
    real = {name for name in _exported(find_driver().path) if name.startswith("SQL")}
    shim = _exported(shim_path())
    assert len(real) == 65, "Microsoft's driver changed its ODBC surface: update odbc_api.h"
    assert shim == real


def test_odbc_api_list_matches_the_real_driver():
    listed = {line.split("(", 1)[1].split(",", 1)[0]
              for line in (SHIM_SOURCES / "odbc_api.h").read_text().splitlines()
              if line.startswith(("SHIM_FWD(", "SHIM_CONN(", "SHIM_OWN("))}
    real = {name for name in _exported(find_driver().path) if name.startswith("SQL")}
    assert listed == real


# -- the connection-string surgery, in C ---------------------------------------------------

class _Result(ctypes.Structure):
    _fields_ = [
        ("rest", ctypes.POINTER(ctypes.c_uint16)),
        ("rest_len", ctypes.c_size_t),
        ("token", ctypes.POINTER(ctypes.c_ubyte)),
        ("token_size", ctypes.c_size_t),
        ("shim_driver", ctypes.c_char_p),
        ("login_timeout", ctypes.c_long),
        ("bulk_copy", ctypes.c_int),
        ("bad_keyword", ctypes.c_char * 64),
    ]


def _build_connstr(out: Path, *extra: str) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (make setup installs build-essential)")
    cmd = [cc, "-std=c11", "-shared", "-fPIC", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
           "-Wconversion", *extra, "-o", str(out), str(SHIM_SOURCES / "connstr.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def connstr_lib(tmp_path_factory) -> ctypes.CDLL:
    # A plain build in this process. The UBSan build runs in a fresh process of its own
    # (test_the_surgery_runs_clean_under_ubsan): loading the sanitizer runtime late into
    # this busy, many-threaded test process once left dlopen spinning forever.
    out = _build_connstr(tmp_path_factory.mktemp("connstr") / "libconnstr_test.so")
    lib = ctypes.CDLL(str(out))
    lib.shim_connstr_split.restype = ctypes.c_int
    lib.shim_connstr_split.argtypes = [ctypes.POINTER(ctypes.c_uint16), ctypes.c_size_t,
                                       ctypes.POINTER(_Result)]
    lib.shim_connstr_result_free.argtypes = [ctypes.POINTER(_Result)]
    lib.shim_connstr_describe.restype = ctypes.c_char_p
    return lib


class Split:
    """What shim_connstr_split returned, copied into Python objects."""

    def __init__(self, lib: ctypes.CDLL, text: str):
        units = text.encode("utf-16-le")
        n = len(units) // 2
        buf = (ctypes.c_uint16 * max(n, 1)).from_buffer_copy(units or b"\0\0")
        res = _Result()
        self.status = lib.shim_connstr_split(buf, n, ctypes.byref(res))
        self.rest = (None if not res.rest else
                     ctypes.string_at(res.rest, 2 * res.rest_len).decode("utf-16-le"))
        if res.rest:
            assert res.rest[res.rest_len] == 0, "rest must be NUL-terminated"
        self.token = ctypes.string_at(res.token, res.token_size) if res.token else None
        self.shim_driver = res.shim_driver.decode() if res.shim_driver else None
        self.login_timeout = res.login_timeout
        self.bulk_copy = res.bulk_copy
        self.bad_keyword = res.bad_keyword.decode()
        lib.shim_connstr_result_free(ctypes.byref(res))
        assert not res.rest and not res.token and res.token_size == 0


_UBSAN_CASES = [
    "", ";", "Server=tcp:db,1433", "AccessToken={x;y}}z}", "AccessToken={unterminated",
    "AccessToken={a}b", "Driver={d};;;ShimDriver=/x.so;AccessToken=eyJ.e.c", "BulkCopy=maybe",
    "BulkCopy=yes;LoginTimeout=7;UID=u", "LoginTimeout=99999999999999999999", "x" * 5000,
    "AccessToken=" + "é😀" * 300, "=;==;{}", "Server={a;b};AccessToken=",
]
_UBSAN_SCRIPT = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.shim_connstr_split.restype = ctypes.c_int
for text in sys.argv[2:]:
    units = text.encode("utf-16-le")
    buf = (ctypes.c_uint16 * max(len(units) // 2, 1)).from_buffer_copy(units or bytes(2))
    result = ctypes.create_string_buffer(1024)  # larger than struct shim_connstr_result
    lib.shim_connstr_split(buf, ctypes.c_size_t(len(units) // 2), result)
    lib.shim_connstr_result_free(result)
print("done", len(sys.argv) - 2)
"""


def test_the_surgery_runs_clean_under_ubsan(tmp_path):
    """UBSan aborts the process on undefined behaviour: every case must run to the end."""
    import sys

    lib = _build_connstr(tmp_path / "libconnstr_ubsan.so", "-fsanitize=undefined",
                         "-fno-sanitize-recover=all")
    proc = subprocess.run([sys.executable, "-c", _UBSAN_SCRIPT, str(lib), *_UBSAN_CASES],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"done {len(_UBSAN_CASES)}"


@pytest.fixture
def split(connstr_lib):
    return lambda text: Split(connstr_lib, text)


JWT = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL2RhdGFiYXNlLndpbmRvd3MubmV0LyJ9.c2ln"


def test_access_token_structure_is_u32_le_length_then_utf16le(split):
    got = split(f"Server=tcp:db,1433;AccessToken={JWT}")
    assert got.status == OK
    assert got.token == token_struct(JWT)
    assert got.token[:4] == (2 * len(JWT)).to_bytes(4, "little")
    assert got.rest == "Server=tcp:db,1433"


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        (f"AccessToken={JWT};Server=s;Database=d", "Server=s;Database=d"),
        (f"Server=s;AccessToken={JWT};Database=d", "Server=s;Database=d"),
        (f"Server=s;Database=d;AccessToken={JWT}", "Server=s;Database=d"),
        (f"Server=s;Database=d;AccessToken={JWT};", "Server=s;Database=d"),
        (f"AccessToken={JWT}", ""),
    ],
    ids=["first", "middle", "last", "last-with-semicolon", "alone"],
)
def test_token_position(split, text, rest):
    got = split(text)
    assert (got.status, got.rest, got.token) == (OK, rest, token_struct(JWT))


@pytest.mark.parametrize("key", ["AccessToken", "ACCESSTOKEN", "accesstoken", "aCcEsStOkEn",
                                 " AccessToken ", "AccessToken  "])
def test_keyword_case_and_blanks(split, key):
    got = split(f"Server=s;{key}={JWT}")
    assert got.token == token_struct(JWT) and got.rest == "Server=s"


def test_braced_token_with_escaped_braces(split):
    got = split("Server=s;AccessToken={a;b}}c=d}}};UID=x")
    assert got.status == OK
    assert got.token == token_struct("a;b}c=d}")
    assert got.rest == "Server=s;UID=x"


def test_unbraced_value_is_trimmed_and_may_hold_braces(split):
    got = split("AccessToken=  ab}c{  ;Server=s")
    assert got.token == token_struct("ab}c{") and got.rest == "Server=s"


def test_other_braced_values_reach_the_driver_verbatim(split):
    text = "Driver={/opt/my driver;x.so};PWD={p;w}}d};Server=s;AccessToken=t;App={a}}}"
    got = split(text)
    assert got.status == OK
    assert got.rest == "Driver={/opt/my driver;x.so};PWD={p;w}}d};Server=s;App={a}}}"
    assert parse_connection_string(got.rest) == [
        ("Driver", "/opt/my driver;x.so"), ("PWD", "p;w}d"), ("Server", "s"), ("App", "a}")]


def test_missing_token_leaves_the_string_alone(split):
    got = split("Driver=x;Server=s;Database=d;Access=no;Token=no")
    assert (got.status, got.rest, got.token, got.shim_driver) == (OK, None, None, None)


def test_empty_string(split):
    got = split("")
    assert (got.status, got.rest, got.token) == (OK, None, None)


def test_similar_keywords_are_not_taken(split):
    got = split("AccessTokenX=a;XAccessToken=b;Access Token=c;Server=s")
    assert got.rest is None and got.token is None


def test_first_token_wins_and_every_copy_is_removed(split):
    got = split("AccessToken=first;Server=s;accesstoken={second}")
    assert got.token == token_struct("first") and got.rest == "Server=s"


def test_shim_driver_is_taken_out_and_decoded(split):
    got = split("Driver=shim;ShimDriver={/opt/dr}}v ☃/libmsodbcsql.so};Server=s;AccessToken=t")
    assert got.status == OK
    assert got.shim_driver == "/opt/dr}v ☃/libmsodbcsql.so"
    assert got.rest == "Driver=shim;Server=s"


def test_shim_driver_alone_still_rewrites(split):
    got = split("shimdriver=/x.so;Server=s")
    assert (got.rest, got.token, got.shim_driver) == ("Server=s", None, "/x.so")


def test_non_ascii_and_astral_text_survives(split):
    got = split("App=日本😀;AccessToken=tök😀n;Server=s")
    assert got.rest == "App=日本😀;Server=s"
    assert got.token == token_struct("tök😀n")


def test_keyword_without_value_is_passed_on(split):
    got = split("Trusted;Server=s;AccessToken=t")
    assert got.rest == "Trusted;Server=s"


def test_empty_token_is_an_error(split):
    for text in ("Server=s;AccessToken=", "Server=s;AccessToken=  ;", "AccessToken={}"):
        got = split(text)
        assert got.status == EMPTY_TOKEN and got.bad_keyword == "AccessToken"
        assert got.rest is None and got.token is None


def test_unterminated_brace_names_the_keyword_not_the_value(split):
    got = split(f"Server=s;AccessToken={{{JWT}")
    assert got.status == UNTERMINATED_BRACE
    assert got.bad_keyword == "AccessToken"
    assert got.token is None and got.rest is None


def test_text_after_closing_brace_is_an_error(split):
    got = split("PWD={a}b;AccessToken=t")
    assert got.status == TEXT_AFTER_BRACE and got.bad_keyword == "PWD"


def test_a_long_keyword_is_not_echoed(split):
    got = split(f"{JWT}={{x")
    assert got.status == UNTERMINATED_BRACE and got.bad_keyword == "(unnamed)"


def test_status_messages_never_hold_values(connstr_lib):
    for status in range(BAD_BULK_COPY + 1):
        text = connstr_lib.shim_connstr_describe(status).decode()
        assert text and "%" not in text


@pytest.mark.parametrize("size", [30 * 1024, 64 * 1024])
def test_large_tokens(split, size):
    token = ("eyJ" + "x" * size)[:size]
    got = split(f"Server=s;Encrypt=strict;AccessToken={token}")
    assert got.token == token_struct(token) and len(got.token) == 4 + 2 * size
    assert got.rest == "Server=s;Encrypt=strict"


_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,11}", fullmatch=True).filter(
    lambda k: k.lower() not in ("accesstoken", "shimdriver", "bulkcopy"))
_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                  max_size=20)
_tokens = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                  min_size=1, max_size=40).filter(lambda t: t.strip(" \t"))


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(_keys, _values), max_size=6,
                      unique_by=lambda kv: kv[0].lower()),
       token=_tokens, where=st.integers(min_value=0, max_value=6),
       key=st.sampled_from(["AccessToken", "ACCESSTOKEN", "accessToken"]))
def test_round_trip_against_the_python_parser(connstr_lib, pairs, token, where, key):
    where = min(where, len(pairs))
    # The Python builder braces any value with blanks, so the token arrives exactly.
    items = [*pairs[:where], (key, token), *pairs[where:]]
    got = Split(connstr_lib, build_connection_string(items))
    assert got.status == OK
    assert got.token == token_struct(token)
    # Unbraced values never hold blanks (the builder braces them), so nothing is trimmed.
    assert parse_connection_string(got.rest) == pairs


# -- the locator ---------------------------------------------------------------------------

def test_shim_path_finds_the_installed_library():
    path = shim_path()
    assert path.name == SHIM_LIBRARY and path.is_file() and path.is_absolute()
    assert path.parent.name == "native" and path.parent.parent.name == "engine"


def test_missing_shim_says_how_to_build_it(monkeypatch, tmp_path):
    import engine.native_shim as native_shim

    monkeypatch.setattr(engine, "__path__", [str(tmp_path)])
    monkeypatch.setattr(native_shim.metadata, "distribution",
                        lambda name: (_ for _ in ()).throw(
                            native_shim.metadata.PackageNotFoundError(name)))
    with pytest.raises(DriverNotFoundError, match=r"make setup.*pip install -e \.") as info:
        shim_path()
    assert str(tmp_path) in str(info.value)


def test_prepare_environment_sets_the_variable(monkeypatch, tmp_path):
    driver = tmp_path / "libmsodbcsql-18.6.so.2.1"
    driver.write_bytes(b"\x7fELF")
    monkeypatch.delenv(ENV_SHIM_TARGET, raising=False)
    prepare_environment(driver)
    assert os.environ[ENV_SHIM_TARGET] == str(driver.resolve())


def test_prepare_environment_refuses_a_missing_driver(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_SHIM_TARGET, raising=False)
    with pytest.raises(DriverNotFoundError, match=r"AZSQL_BULK_ODBC_DRIVER.*azsql-bulk doctor"):
        prepare_environment(tmp_path / "gone.so")
    assert ENV_SHIM_TARGET not in os.environ


@pytest.mark.parametrize(("text", "seconds", "rest"), [
    ("Server=x;LoginTimeout=30", 30, None),  # read, and the string passes on unchanged
    (f"LOGINTIMEOUT = 7 ;AccessToken={JWT};Server=x", 7, "LOGINTIMEOUT = 7 ;Server=x"),
    ("LoginTimeout=5;LoginTimeout=9", 5, None),  # the first value counts
    ("LoginTimeout=0", 0, None),
    ("LoginTimeout=abc", -1, None),
    ("LoginTimeout={12}", -1, None),
    ("LoginTimeout=99999999999999999999", -1, None),
    ("Server=x", -1, None),
])
def test_login_timeout_is_read_and_kept(split, text, seconds, rest):
    got = split(text)
    assert got.status == OK and got.login_timeout == seconds and got.rest == rest


# -- BulkCopy=: SQL_COPT_SS_BCP before connecting -------------------------------------------

@pytest.mark.parametrize(("value", "flag"), [
    ("yes", 1), ("YES", 1), ("true", 1), ("1", 1), ("  Yes ", 1), ("{yes}", 1),
    ("no", 0), ("No", 0), ("false", 0), ("0", 0),
])
def test_bulk_copy_is_taken_out_and_read(split, value, flag):
    got = split(f"Driver=shim;BulkCopy={value};Server=s;AccessToken={JWT}")
    assert got.status == OK and got.bulk_copy == flag
    assert got.rest == "Driver=shim;Server=s" and got.token == token_struct(JWT)


def test_bulk_copy_absent_is_minus_one(split):
    assert split(f"Server=s;AccessToken={JWT}").bulk_copy == -1
    assert split("Server=s").bulk_copy == -1


def test_bulk_copy_alone_still_rewrites(split):
    got = split("bulkcopy=yes;Server=s")
    assert (got.status, got.rest, got.token, got.bulk_copy) == (OK, "Server=s", None, 1)


def test_first_bulk_copy_wins_and_every_copy_is_removed(split):
    got = split("BulkCopy=no;Server=s;BULKCOPY=yes")
    assert (got.bulk_copy, got.rest) == (0, "Server=s")


@pytest.mark.parametrize("value", ["", "on", "2", "yes please", "{}"])
def test_bad_bulk_copy_value_is_an_error_naming_the_keyword(split, value):
    got = split(f"Server=s;BulkCopy={value};AccessToken={JWT}")
    assert got.status == BAD_BULK_COPY and got.bad_keyword == "BulkCopy"
    assert got.rest is None and got.token is None


def test_similar_keywords_to_bulk_copy_reach_the_driver(split):
    got = split("BulkCopyX=yes;Bulk Copy=yes;Server=s")
    assert (got.rest, got.bulk_copy) == (None, -1)


# -- ConnectionOptions.bulk_copy: the keyword the engine writes is the one the shim reads ----

def _engine_string(**options: object) -> str:
    from engine.connection import ConnectionOptions, connection_attributes

    attrs = connection_attributes(ConnectionOptions("srv", "db", **options), "/shim.so")
    return build_connection_string([*attrs, ("AccessToken", JWT)])


def test_bulk_copy_option_reaches_the_shim_as_on(split):
    got = split(_engine_string(bulk_copy=True))
    assert got.status == OK and got.bulk_copy == 1 and got.token == token_struct(JWT)
    assert "BulkCopy" not in got.rest and "Server=tcp:srv,1433" in got.rest


def test_bulk_copy_is_off_by_default_and_not_written(split):
    text = _engine_string()
    assert "bulkcopy" not in text.lower()
    assert split(text).bulk_copy == -1


def test_redaction_still_hides_the_token_with_bulk_copy():
    from engine.connection_string import redact

    shown = redact(_engine_string(bulk_copy=True))
    assert JWT not in shown and "AccessToken=***" in shown and "BulkCopy=yes" in shown
