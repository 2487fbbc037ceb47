"""Azurite for the remote-source tests (see tests/azurite.py), plus the load fixtures.

Azurite serves HTTPS on loopback, on a port the OS picks, with its data in a temporary
directory, and checks bearer tokens with ``--oauth basic`` (issuer, audience, lifetime;
not the signature, and no role assignments). The tokens come from the SQL emulator's
managed-identity endpoint through azure-identity, the path a load in Azure takes. No
account key or SAS is used in these tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azurite import Azurite, AzuriteError, running_azurite
from loads import reader, sql_target

__all__ = ["azurite", "ca_bundle", "reader", "sql_target", "storage_env"]


@pytest.fixture(scope="module")
def azurite(tmp_path_factory) -> Iterator[Azurite]:
    try:
        with running_azurite(tmp_path_factory.mktemp("azurite")) as service:
            yield service
    except AzuriteError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def ca_bundle(azurite, emu_proc, tmp_path_factory) -> Path:
    """The SQL emulator's CA (its token endpoint) and Azurite's certificate in one file."""
    bundle = tmp_path_factory.mktemp("ca") / "bundle.pem"
    bundle.write_bytes(Path(emu_proc.ca_cert).read_bytes() + azurite.cert.read_bytes())
    return bundle


@pytest.fixture
def storage_env(monkeypatch, emu_proc, azurite, ca_bundle) -> dict[str, str]:
    """The emulator's managed identity for azure-identity, trusting both local servers."""
    env = dict(emu_proc.env, REQUESTS_CA_BUNDLE=str(ca_bundle), SSL_CERT_FILE=str(ca_bundle))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
