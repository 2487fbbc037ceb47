"""Secrets, credential options, the token cache and the credential kinds (no network)."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import pickle
import threading
import time

import pytest
from azure.core.credentials import AccessToken as AzureAccessToken
from azure.core.credentials import AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError

from engine.credentials import (
    DEFAULT_SCOPE,
    AccessToken,
    AzureCloud,
    CredentialKind,
    CredentialOptions,
    CredentialTokenProvider,
    Secret,
    StaticTokenProvider,
    build_credential,
    create_token_provider,
    sql_login,
    unverified_claims,
)
from engine.errors import ConfigurationError, CredentialError


def make_jwt(**claims) -> str:
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeCredential:
    """Shaped like azure-identity's SupportsTokenInfo credentials."""

    def __init__(self, clock, lifetime=3600, refresh_in=None, delay=0.0, fail=None):
        self.clock, self.lifetime, self.refresh_in = clock, lifetime, refresh_in
        self.delay, self.fail = delay, fail
        self.calls = 0
        self.closed = False
        self._lock = threading.Lock()

    def get_token_info(self, *scopes, options=None):
        assert scopes == (DEFAULT_SCOPE,)
        if self.fail:
            raise self.fail
        time.sleep(self.delay)
        with self._lock:
            self.calls += 1
            n = self.calls
        now = self.clock()
        refresh_on = int(now + self.refresh_in) if self.refresh_in else None
        return AccessTokenInfo(f"token-{id(self)}-{n}", int(now + self.lifetime),
                               refresh_on=refresh_on)

    def close(self):
        self.closed = True


# -- Secret -------------------------------------------------------------------------------

def test_secret_never_shows_itself(caplog):
    secret = Secret("hunter2")
    assert repr(secret) == "Secret('***')" and str(secret) == "***"
    assert f"{secret}" == "***" and f"{secret!r}" == "Secret('***')" and "%s" % (secret,) == "***"  # noqa: UP031
    assert secret.reveal() == "hunter2"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("t").info("value %s %r", secret, secret)
    assert "hunter2" not in caplog.text
    assert "hunter2" not in repr({"k": secret, "l": [secret]})


def test_secret_equality_hash_truth_and_immutability():
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert hash(Secret("a")) == hash(Secret("a"))
    assert not Secret("") and Secret("x")
    assert Secret(Secret("x")).reveal() == "x"
    with pytest.raises(AttributeError):
        secret = Secret("x")
        secret._value = "y"
    assert pickle.loads(pickle.dumps(Secret("p"))).reveal() == "p"


def test_access_token_repr_hides_the_token():
    token = AccessToken(Secret("eyJ.secret.part"), expires_on=2000.0, obtained_at=1000.0)
    assert "secret" not in repr(token) and "***" in repr(token)


# -- options ------------------------------------------------------------------------------

def test_options_accept_kind_and_cloud_names():
    options = CredentialOptions(kind="workload-identity", cloud="usgov")
    assert options.kind is CredentialKind.WORKLOAD_IDENTITY
    assert options.cloud is AzureCloud.US_GOVERNMENT
    assert options.effective_scope == "https://database.usgovcloudapi.net/.default"
    assert CredentialOptions(cloud="china").effective_scope == \
        "https://database.chinacloudapi.cn/.default"
    assert CredentialOptions().effective_scope == "https://database.windows.net/.default"
    assert CredentialOptions(scope="api://custom/.default", cloud="china").effective_scope == \
        "api://custom/.default"
    assert AzureCloud.US_GOVERNMENT.authority_host == "https://login.microsoftonline.us"


def test_options_refuse_unknown_names():
    with pytest.raises(ConfigurationError, match="managed-identity"):
        CredentialOptions(kind="password")
    with pytest.raises(ConfigurationError, match="usgov"):
        CredentialOptions(cloud="mars")
    with pytest.raises(ConfigurationError):
        CredentialOptions(refresh_margin=-1)


def test_options_have_no_secret_fields_and_hide_the_secret_store():
    names = {f.name for f in dataclasses.fields(CredentialOptions)}
    assert not names & {"client_secret", "password", "secret", "access_token", "token"}
    options = CredentialOptions(kind="service-principal", secret_store=lambda: "s3cr3t-value")
    assert "secret_store" not in repr(options)
    assert dataclasses.is_dataclass(options)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.kind = "default"  # type: ignore[misc]


# -- claims and staleness -----------------------------------------------------------------

def test_unverified_claims_returns_identity_claims_only():
    token = make_jwt(aud="https://database.windows.net/", oid="o", appid="a", exp=5, secret="x")
    assert unverified_claims(token) == {"aud": "https://database.windows.net/", "oid": "o",
                                        "appid": "a", "exp": 5}
    assert unverified_claims("a.b.c") == {} and unverified_claims("opaque") == {}
    assert unverified_claims("a.W10.c") == {}  # a JSON list, not an object


def test_stale_at_uses_margin_half_lifetime_and_refresh_on():
    long = AccessToken(Secret("t"), expires_on=4600.0, obtained_at=1000.0)
    assert long.stale_at(300) == 4300.0
    short = AccessToken(Secret("t"), expires_on=1010.0, obtained_at=1000.0)
    assert short.stale_at(300) == 1005.0
    hinted = AccessToken(Secret("t"), expires_on=4600.0, refresh_on=2000.0, obtained_at=1000.0)
    assert hinted.stale_at(300) == 2000.0
    assert long.seconds_left(now=4000.0) == 600.0


# -- the cache ----------------------------------------------------------------------------

def test_provider_caches_while_fresh_and_renews_before_expiry():
    clock = Clock()
    credential = FakeCredential(clock, lifetime=3600)
    provider = CredentialTokenProvider(credential, clock=clock)
    first = provider.get_token()
    assert provider.get_token() is first and credential.calls == 1
    assert first.seconds_left(clock()) == 3600
    clock.now += 3600 - 301
    assert provider.get_token() is first
    clock.now += 2
    second = provider.get_token()
    assert second.token != first.token and credential.calls == 2 and provider.fetches == 2


def test_provider_honours_refresh_on():
    clock = Clock()
    credential = FakeCredential(clock, lifetime=3600, refresh_in=600)
    provider = CredentialTokenProvider(credential, clock=clock)
    first = provider.get_token()
    assert first.refresh_on == clock.now + 600
    clock.now += 599
    assert provider.get_token() is first
    clock.now += 2
    assert provider.get_token() is not first


def test_provider_is_thread_safe_single_flight():
    clock = Clock()
    credential = FakeCredential(clock, delay=0.05)
    provider = CredentialTokenProvider(credential, clock=clock)
    results, barrier = [], threading.Barrier(16)

    def worker():
        barrier.wait()
        results.append(provider.get_token())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)  # a bound for a hang only
    assert len(results) == 16 and credential.calls == 1
    assert len({r.token.reveal() for r in results}) == 1


def test_force_refresh_gets_a_new_token_and_rebuilds_a_stubborn_credential():
    clock = Clock()
    built: list[FakeCredential] = []

    class Stubborn(FakeCredential):
        """Returns the same token until rebuilt, like azure-identity's own cache."""

        def get_token_info(self, *scopes, options=None):
            self.calls += 1
            return AccessTokenInfo(f"cached-{id(self)}", int(self.clock() + 3600))

    def factory():
        built.append(Stubborn(clock))
        return built[-1]

    provider = CredentialTokenProvider(factory=factory, clock=clock)
    first = provider.get_token()
    fresh = provider.force_refresh(rejected=first)
    assert fresh.token != first.token
    assert len(built) == 2 and built[0].closed
    provider.close()
    assert built[1].closed


def test_force_refresh_reuses_a_token_another_thread_already_renewed():
    clock = Clock()
    credential = FakeCredential(clock)
    provider = CredentialTokenProvider(credential, clock=clock)
    rejected = provider.get_token()
    renewed = provider.force_refresh(rejected=rejected)
    assert provider.force_refresh(rejected=rejected) is renewed
    assert credential.calls == 2


def test_provider_with_legacy_get_token_credential():
    class Legacy:
        def get_token(self, *scopes, **kwargs):
            return AzureAccessToken("legacy-token", 2_000_000)

    token = CredentialTokenProvider(Legacy(), clock=Clock()).get_token()
    assert token.token.reveal() == "legacy-token" and token.refresh_on is None


def test_credential_failure_becomes_credential_error_without_chain():
    clock = Clock()
    failing = FakeCredential(clock, fail=ClientAuthenticationError("AADSTS7000215: bad secret"))
    provider = CredentialTokenProvider(failing, description="service-principal",
                                       remedy="check the secret", clock=clock)
    with pytest.raises(CredentialError) as info:
        provider.get_token()
    text = str(info.value)
    assert "service-principal" in text and "AADSTS7000215" in text and "check the secret" in text
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_provider_needs_a_credential_or_factory():
    with pytest.raises(ValueError):
        CredentialTokenProvider()


# -- access-token kind --------------------------------------------------------------------

def test_static_provider_reads_env_and_knows_expiry(monkeypatch):
    clock = Clock()
    token = make_jwt(exp=int(clock.now + 1200), aud="https://database.windows.net/")
    monkeypatch.setenv("MY_TOKEN", token)
    provider = StaticTokenProvider(env_var="MY_TOKEN", clock=clock)
    got = provider.get_token()
    assert got.token.reveal() == token and got.seconds_left(clock.now) == 1200
    assert token not in repr(provider) and token not in repr(got)


def test_static_provider_rereads_a_file_when_stale(tmp_path):
    clock = Clock()
    path = tmp_path / "token"
    path.write_text(make_jwt(exp=int(clock.now + 100)) + "\n")
    provider = StaticTokenProvider(path=path, clock=clock)
    first = provider.get_token()
    path.write_text(make_jwt(exp=int(clock.now + 3000)))
    assert provider.get_token() is first
    clock.now += 60
    assert provider.get_token().expires_on == 1_000_000 + 3000


def test_static_provider_opaque_token_gets_a_short_assumed_lifetime(monkeypatch):
    monkeypatch.setenv("AZSQL_BULK_ACCESS_TOKEN", "opaque-token")
    clock = Clock()
    token = StaticTokenProvider(clock=clock).get_token()
    assert token.expires_on == clock.now + 300


def test_static_provider_force_refresh_with_the_same_expired_token_is_terminal(tmp_path):
    clock = Clock()
    path = tmp_path / "token"
    path.write_text(make_jwt(exp=int(clock.now - 10)))
    provider = StaticTokenProvider(path=path, clock=clock)
    rejected = provider.get_token()
    with pytest.raises(CredentialError, match="has expired") as info:
        provider.force_refresh(rejected=rejected)
    assert str(path) in str(info.value)
    path.write_text(make_jwt(exp=int(clock.now + 3600)))
    assert provider.force_refresh(rejected=rejected).token != rejected.token


def test_static_provider_missing_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("AZSQL_BULK_ACCESS_TOKEN", raising=False)
    with pytest.raises(CredentialError, match="AZSQL_BULK_ACCESS_TOKEN"):
        StaticTokenProvider().get_token()
    with pytest.raises(CredentialError, match="cannot read"):
        StaticTokenProvider(path=tmp_path / "absent").get_token()


# -- credential kinds ---------------------------------------------------------------------

@pytest.fixture
def azure_env(monkeypatch):
    monkeypatch.setenv("AZURE_TENANT_ID", "3c0ffee0-0000-4000-8000-000000000000")
    monkeypatch.setenv("AZURE_CLIENT_ID", "3c0ffee0-0002-4000-8000-00000000a002")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-a-real-secret")
    return monkeypatch


@pytest.mark.parametrize(("kind", "class_name"), [
    ("managed-identity", "ManagedIdentityCredential"),
    ("service-principal", "ClientSecretCredential"),
    ("azure-cli", "AzureCliCredential"),
    ("default", "DefaultAzureCredential"),
])
def test_build_credential_by_kind(azure_env, kind, class_name):
    credential = build_credential(CredentialOptions(kind=kind, client_id="cid"))
    try:
        assert type(credential).__name__ == class_name
    finally:
        credential.close()


def test_workload_identity_needs_its_token_file(azure_env, tmp_path):
    azure_env.delenv("AZURE_FEDERATED_TOKEN_FILE", raising=False)
    with pytest.raises(ConfigurationError, match="AZURE_FEDERATED_TOKEN_FILE"):
        build_credential(CredentialOptions(kind="workload-identity"))
    token_file = tmp_path / "sa-token"
    token_file.write_text("assertion")
    credential = build_credential(CredentialOptions(kind="workload-identity",
                                                    token_file=str(token_file)))
    assert type(credential).__name__ == "WorkloadIdentityCredential"


def test_service_principal_secret_only_from_env_or_store(azure_env):
    azure_env.delenv("AZURE_CLIENT_SECRET")
    with pytest.raises(ConfigurationError, match="AZURE_CLIENT_SECRET"):
        build_credential(CredentialOptions(kind="service-principal"))
    calls = []

    def store():
        calls.append(1)
        return "from-the-vault"

    credential = build_credential(CredentialOptions(kind="service-principal", secret_store=store))
    assert type(credential).__name__ == "ClientSecretCredential" and calls == [1]


def test_service_principal_needs_tenant_and_client(monkeypatch):
    monkeypatch.delenv("AZURE_TENANT_ID", raising=False)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "x")
    with pytest.raises(ConfigurationError, match="tenant"):
        build_credential(CredentialOptions(kind="service-principal", client_id="c"))


def test_create_token_provider_per_kind(azure_env):
    provider = create_token_provider(CredentialOptions(kind="managed-identity", cloud="china"))
    assert isinstance(provider, CredentialTokenProvider)
    assert provider.scope == "https://database.chinacloudapi.cn/.default"
    assert "managed-identity" in repr(provider)
    provider.close()
    static = create_token_provider(CredentialOptions(kind="access-token", access_token_env="T"))
    assert isinstance(static, StaticTokenProvider) and static.env_var == "T"
    with pytest.raises(ConfigurationError, match="sql"):
        create_token_provider(CredentialOptions(kind="sql"))
    with pytest.raises(ConfigurationError):
        build_credential(CredentialOptions(kind="access-token"))


def test_sql_login_reads_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("AZSQL_BULK_SQL_PASSWORD", "Pa55word!")
    user, password = sql_login(CredentialOptions(kind="sql", sql_user="loader"))
    assert user == "loader" and password.reveal() == "Pa55word!" and repr(password) == \
        "Secret('***')"
    monkeypatch.delenv("AZSQL_BULK_SQL_PASSWORD")
    with pytest.raises(ConfigurationError, match="AZSQL_BULK_SQL_PASSWORD"):
        sql_login(CredentialOptions(kind="sql", sql_user="loader"))
    with pytest.raises(ConfigurationError, match="sql_user"):
        sql_login(CredentialOptions(kind="sql"))
