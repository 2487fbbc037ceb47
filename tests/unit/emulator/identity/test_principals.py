"""Principals directory: defaults, resolution, SQL logins, and principals-file errors."""

from __future__ import annotations

import json

import pytest

from azsql_emulator.errors import LoginError
from azsql_emulator.identity.clients import load_or_create_default_credentials
from azsql_emulator.identity.jwt_tokens import TokenIdentity
from azsql_emulator.identity.principals import PrincipalDirectory, PrincipalsFileError

TENANT = "3c0ffee0-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    return load_or_create_default_credentials(tmp_path_factory.mktemp("principals"))


@pytest.fixture(scope="module")
def directory(creds):
    return PrincipalDirectory.defaults(creds, "appdb")


def _app(appid, oid="99999999-0000-4000-8000-000000000000"):
    return TokenIdentity(
        oid=oid,
        appid=appid,
        tid=TENANT,
        idtyp="app",
        name=None,
        upn=None,
        audience="https://database.windows.net/",
        issuer=f"https://sts.windows.net/{TENANT}/",
        issued_at=0,
        not_before=0,
        expires_at=0,
        uti="u",
        claims={},
    )


def _user(oid, upn):
    return TokenIdentity(
        oid=oid,
        appid=None,
        tid=TENANT,
        idtyp="user",
        name=None,
        upn=upn,
        audience="https://database.windows.net/",
        issuer=f"https://sts.windows.net/{TENANT}/",
        issued_at=0,
        not_before=0,
        expires_at=0,
        uti="u",
        claims={},
    )


@pytest.mark.parametrize("database", ["appdb", "master", "APPDB"])
def test_managed_identity_is_db_owner_in_user_db_and_master(directory, creds, database):
    principal = directory.resolve(_app(creds.managed_identity.client_id), database)
    assert principal.name == "azsql-emulator-mi"
    assert principal.kind == "app"
    assert principal.roles == frozenset({"db_owner"})
    assert principal.login_name == f"{creds.managed_identity.client_id}@{TENANT}"
    assert principal.can_read and principal.can_write and principal.can_ddl


def test_reader_writer_and_no_user_apps(directory, creds):
    reader = directory.resolve(_app(creds.reader_app.client_id), "appdb")
    assert reader.roles == {"db_datareader"} and reader.can_read and not reader.can_write
    writer = directory.resolve(_app(creds.writer_app.client_id), "appdb")
    assert (
        writer.roles == {"db_datareader", "db_datawriter"}
        and writer.can_write
        and not writer.can_ddl
    )
    with pytest.raises(LoginError) as info:
        directory.resolve(_app(creds.no_user_app.client_id), "appdb")
    assert info.value.reason == "unknown_principal"
    with pytest.raises(LoginError) as info:
        directory.resolve(_app(creds.reader_app.client_id), "master")
    assert info.value.reason == "unknown_principal"


def test_lookup_by_oid_before_appid(directory, creds):
    principal = directory.resolve(_user(creds.user_object_id, creds.user_upn), "appdb")
    assert (principal.kind, principal.login_name, principal.name) == (
        "user",
        creds.user_upn,
        creds.user_upn,
    )


def test_sql_login(directory, creds):
    principal = directory.check_sql_login("azsql_admin", creds.sql_password, "appdb")
    assert (principal.kind, principal.login_name, principal.roles) == (
        "sql",
        "azsql_admin",
        {"db_owner"},
    )
    for user, password, reason in [
        ("azsql_admin", creds.sql_password + "x", "password"),
        ("nobody", creds.sql_password, "password"),
    ]:
        with pytest.raises(LoginError) as info:
            directory.check_sql_login(user, password, "appdb")
        assert info.value.reason == reason and info.value.number == 18456
        assert password not in info.value.message
    with pytest.raises(LoginError) as info:
        directory.check_sql_login("azsql_admin", creds.sql_password, "otherdb")
    assert info.value.reason == "unknown_principal"


def test_secrets_never_in_repr(directory, creds):
    text = repr(directory) + repr(directory.sql_logins) + repr(creds)
    assert creds.sql_password not in text
    assert creds.service_principal.client_secret not in text


def _write(tmp_path, data):
    path = tmp_path / "principals.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_principals_file_round_trip(tmp_path):
    path = _write(
        tmp_path,
        {
            "principals": [
                {
                    "id": "AAAA0000-0000-4000-8000-000000000001",
                    "name": "etl",
                    "kind": "app",
                    "databases": {"Sales": ["db_datareader", "db_ddladmin"]},
                },
                {
                    "id": "bbbb0000-0000-4000-8000-000000000001",
                    "name": "ann",
                    "kind": "user",
                    "upn": "ann@contoso.com",
                    "databases": {"sales": ["db_owner"]},
                    "disabled": True,
                },
            ],
            "sql_logins": [
                {
                    "name": "loader",
                    "password": "S3cret!pw",
                    "databases": {"sales": ["db_datawriter"]},
                }
            ],
        },
    )
    directory = PrincipalDirectory.from_file(path, tenant_id=TENANT)
    etl = directory.resolve(_app("aaaa0000-0000-4000-8000-000000000001"), "sales")
    assert etl.roles == {"db_datareader", "db_ddladmin"}
    with pytest.raises(LoginError) as info:
        directory.resolve(_user("bbbb0000-0000-4000-8000-000000000001", "ann@contoso.com"), "sales")
    assert info.value.reason == "disabled"
    assert directory.check_sql_login("LOADER", "S3cret!pw", "sales").roles == {"db_datawriter"}


def test_include_defaults(tmp_path, directory, creds):
    path = _write(tmp_path, {"include_defaults": True, "principals": []})
    loaded = PrincipalDirectory.from_file(path, tenant_id=TENANT, defaults=directory)
    assert (
        loaded.resolve(_app(creds.service_principal.client_id), "appdb").name == "azsql-loader-sp"
    )


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        ('{"principals": [', "line 1", "not valid JSON"),
        ("[]", "<top level>", "expected a JSON object"),
        ({"principal": []}, "<top level>", "unknown keys ['principal']"),
        ({"principals": {}}, "principals", "expected a list"),
        (
            {"principals": [{"name": "x", "databases": {"a": ["db_owner"]}}]},
            "principals[0].id",
            "required",
        ),
        (
            {
                "principals": [
                    {"id": "1", "name": "x", "kind": "robot", "databases": {"a": ["db_owner"]}}
                ]
            },
            "principals[0].kind",
            "expected 'app' or 'user'",
        ),
        (
            {"principals": [{"id": "1", "name": "x", "databases": {"appdb": ["db_admin"]}}]},
            "principals[0].databases.appdb",
            "unknown role 'db_admin'",
        ),
        (
            {"principals": [{"id": "1", "name": "x", "databases": {}}]},
            "principals[0].databases",
            "expected an object",
        ),
        (
            {"principals": [{"id": "1", "name": "x", "roles": [], "databases": {"a": []}}]},
            "principals[0]",
            "unknown keys ['roles']",
        ),
        (
            {"sql_logins": [{"name": "x", "databases": {"a": ["db_owner"]}}]},
            "sql_logins[0].password",
            "required",
        ),
    ],
)
def test_bad_principals_file_names_file_and_problem(tmp_path, content, where, what):
    path = _write(tmp_path, content)
    with pytest.raises(PrincipalsFileError) as info:
        PrincipalDirectory.from_file(path, tenant_id=TENANT)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert where in message and what in message


def test_bad_principals_file_never_echoes_password(tmp_path):
    path = _write(
        tmp_path,
        {"sql_logins": [{"name": "x", "password": "Hunter2!", "databases": {"a": ["sa"]}}]},
    )
    with pytest.raises(PrincipalsFileError) as info:
        PrincipalDirectory.from_file(path, tenant_id=TENANT)
    assert "Hunter2!" not in str(info.value)


def test_missing_principals_file(tmp_path):
    with pytest.raises(PrincipalsFileError, match="cannot read"):
        PrincipalDirectory.from_file(tmp_path / "absent.json", tenant_id=TENANT)
