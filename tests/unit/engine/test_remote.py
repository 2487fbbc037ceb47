"""engine.remote without a network: URI forms, canonical names, globs, options, credentials."""

from __future__ import annotations

import pytest

from engine.credentials import CredentialOptions
from engine.errors import ConfigurationError
from engine.remote import RemoteFiles, StorageOptions, _token_credential
from engine.remote_uri import ObjectUri, glob_regex, is_remote, parse_uri
from engine.sources import open_source


@pytest.mark.parametrize("text, remote", [
    ("abfss://c@a.dfs.core.windows.net/x.parquet", True),
    ("ABFS://c/x", True),
    ("az://c/x", True),
    ("/data/x.parquet", False),
    ("s3://b/x", False),
    ("abfss:/c/x", False),
    (42, False),
])
def test_is_remote(text, remote):
    assert is_remote(text) is remote


@pytest.mark.parametrize("text, want", [
    ("abfss://sales@contoso.dfs.core.windows.net/2026/*.parquet",
     ObjectUri("sales", "contoso", "core.windows.net", "2026/*.parquet")),
    ("abfs://sales@contoso.blob.core.windows.net/a/b.csv",
     ObjectUri("sales", "contoso", "core.windows.net", "a/b.csv")),
    ("abfss://sales@gov.dfs.core.usgovcloudapi.net/x",
     ObjectUri("sales", "gov", "core.usgovcloudapi.net", "x")),
    ("abfss://sales@cn.dfs.core.chinacloudapi.cn/",
     ObjectUri("sales", "cn", "core.chinacloudapi.cn", "")),
    ("abfss://sales@devstoreaccount1/d/", ObjectUri("sales", "devstoreaccount1",
                                                      "core.windows.net", "d/")),
    ("az://sales/d/p.parquet", ObjectUri("sales", None, "core.windows.net", "d/p.parquet")),
])
def test_parse_uri_forms(text, want):
    assert parse_uri(text) == want


def test_every_spelling_of_one_object_has_one_canonical_name():
    names = {parse_uri(t).with_account("contoso").display() for t in (
        "abfss://sales@contoso.dfs.core.windows.net/d/p.parquet",
        "abfs://sales@contoso.blob.core.windows.net/d/p.parquet",
        "az://sales/d/p.parquet",
        "abfss://sales/d/p.parquet",
    )}
    assert names == {"abfss://sales@contoso.dfs.core.windows.net/d/p.parquet"}
    assert ObjectUri("s", "dev", "core.windows.net", "p", bare=True).display() == \
        "abfss://s@dev/p"


def test_blob_endpoint_follows_the_cloud_and_the_override():
    assert parse_uri("abfss://s@gov.dfs.core.usgovcloudapi.net/x").blob_endpoint() == \
        "https://gov.blob.core.usgovcloudapi.net"
    assert parse_uri("abfss://s@dev/x").blob_endpoint("https://127.0.0.1:10000/{account}/") \
        == "https://127.0.0.1:10000/dev"
    with pytest.raises(ConfigurationError, match=r"names no storage account.*STORAGE_ACCOUNT"):
        parse_uri("az://s/x").blob_endpoint()


@pytest.mark.parametrize("text, match", [
    ("abfss://s@a.dfs.core.windows.net/x?sv=2024&sig=abc", "no SAS tokens"),
    ("abfss://@a.dfs.core.windows.net/x", "names no container"),
    ("abfss://s@example.com/x", "the host must be ACCOUNT.dfs"),
    ("/local/path", "is not an abfs"),
])
def test_parse_uri_refuses(text, match):
    with pytest.raises(ConfigurationError, match=match):
        parse_uri(text)


@pytest.mark.parametrize("pattern, name, hit", [
    ("d/*.parquet", "d/p.parquet", True),
    ("d/*.parquet", "d/x/p.parquet", False),
    ("d/**/*.parquet", "d/p.parquet", True),
    ("d/**/*.parquet", "d/region=eu/day=1/p.parquet", True),
    ("d/**", "d/a/b/c.csv", True),
    ("d/part-?.csv", "d/part-1.csv", True),
    ("d/part-?.csv", "d/part-10.csv", False),
    ("d/[ab]/*.csv", "d/b/x.csv", True),
    ("d/[!ab]/*.csv", "d/b/x.csv", False),
    ("d/[!ab]/*.csv", "d/c/x.csv", True),
    ("d/x+y (1).csv", "d/x+y (1).csv", True),
])
def test_glob_regex(pattern, name, hit):
    assert bool(glob_regex(pattern).fullmatch(name)) is hit


def test_options_from_the_environment(monkeypatch):
    monkeypatch.setenv("AZSQL_BULK_AUTH", "managed-identity")
    monkeypatch.setenv("AZSQL_BULK_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("AZSQL_BULK_STORAGE_ENDPOINT", "https://127.0.0.1:10000/{account}")
    monkeypatch.setenv("AZSQL_BULK_STORAGE_ACCOUNT", "dev")
    got = StorageOptions().resolved()
    assert got.credential == CredentialOptions(
        kind="managed-identity", client_id="11111111-2222-3333-4444-555555555555")
    assert (got.endpoint, got.account) == ("https://127.0.0.1:10000/{account}", "dev")
    # an explicit choice wins over the environment; storage can have its own kind
    mine = CredentialOptions(kind="azure-cli")
    assert StorageOptions(credential=mine).resolved().credential is mine
    monkeypatch.setenv("AZSQL_BULK_STORAGE_AUTH", "workload-identity")
    assert StorageOptions().resolved().credential.kind == "workload-identity"


@pytest.mark.parametrize("kind", ["sql", "access-token"])
def test_database_only_logins_fall_back_to_the_default_identity(monkeypatch, kind):
    monkeypatch.delenv("AZSQL_BULK_STORAGE_AUTH", raising=False)
    monkeypatch.setenv("AZSQL_BULK_AUTH", kind)
    assert StorageOptions().resolved().credential.kind == "default"
    with pytest.raises(ConfigurationError, match=f"credential kind {kind} cannot read storage"):
        _token_credential(CredentialOptions(kind=kind))


def test_the_storage_credential_is_the_engine_one():
    from azure.identity import ManagedIdentityCredential

    cred = _token_credential(CredentialOptions(kind="managed-identity"))
    assert isinstance(cred, ManagedIdentityCredential)


def test_open_source_refuses_a_bad_uri_before_any_request(monkeypatch):
    monkeypatch.delenv("AZSQL_BULK_STORAGE_ACCOUNT", raising=False)
    with pytest.raises(ConfigurationError, match="no SAS tokens"):
        open_source("abfss://s@a.dfs.core.windows.net/x.parquet?sig=secret")
    with pytest.raises(ConfigurationError, match="names no storage account"):
        open_source("az://sales/x.parquet", storage=StorageOptions(account=None))


def test_remote_files_owns_only_what_it_listed():
    remote = RemoteFiles(StorageOptions(account="dev"))
    assert not remote.owns("abfss://s@dev/x.parquet")
    remote.close()  # nothing opened: a no-op
