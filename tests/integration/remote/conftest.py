"""Azurite (Microsoft's storage emulator) for the remote-source tests, plus the load fixtures.

Azurite runs from the copy `scripts/setup-azurite.sh` installs (``make setup``), on
loopback, on a port the OS picks, with its data in a temporary directory. It serves HTTPS
with a certificate made here and checks bearer tokens with ``--oauth basic``: issuer
(``https://sts.windows.net/...``), audience (``https://storage.azure.com``) and lifetime,
but not the signature, and it has no role assignments. The tokens come from the SQL
emulator's managed-identity endpoint through azure-identity, the same path a load in
Azure takes. No account key or SAS is used anywhere in these tests.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from loads import reader, sql_target

__all__ = ["azurite", "reader", "sql_target", "storage_env"]

ACCOUNT = "devstoreaccount1"  # Azurite's built-in account


def azurite_binary() -> str:
    """``$AZURITE`` (path to azurite-blob), else the copy setup-azurite.sh installed."""
    if os.environ.get("AZURITE"):
        return os.environ["AZURITE"]
    script = (Path(__file__).parents[3] / "scripts" / "setup-azurite.sh").read_text()
    version = re.search(r"^AZURITE_VERSION=(\S+)", script, re.MULTILINE)
    assert version, "scripts/setup-azurite.sh pins no AZURITE_VERSION"
    root = os.environ.get("AZSQL_BULK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "azsql-bulk")
    binary = os.path.join(root, f"azurite-{version.group(1)}", "node_modules", ".bin",
                          "azurite-blob")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"Azurite is not installed at {binary}: run `make setup` "
                    "(scripts/setup-azurite.sh) or set $AZURITE to an azurite-blob binary")
    return binary


def write_tls_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the CA clients trust) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azurite-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "azurite-cert.pem", directory / "azurite-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob service.

    :param endpoint: ``https://127.0.0.1:<port>/devstoreaccount1``.
    :param endpoint_template: the same with ``{account}``, for ``StorageOptions.endpoint``.
    :param cert: its certificate (PEM), to trust.
    """

    endpoint: str
    endpoint_template: str
    cert: Path

    def uri(self, container: str, path: str = "") -> str:
        return f"abfss://{container}@{ACCOUNT}/{path}"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory) -> Iterator[Azurite]:
    work = tmp_path_factory.mktemp("azurite")
    cert, key = write_tls_files(work)
    cmd = [azurite_binary(), "--blobHost", "127.0.0.1", "--blobPort", "0",
           "--location", str(work / "data"), "--cert", str(cert), "--key", str(key),
           "--oauth", "basic", "--skipApiVersionCheck", "--loose", "--silent",
           "--disableTelemetry"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # keep draining, so Azurite never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    port = None
    deadline = time.monotonic() + 30
    while port is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if "successfully listens on https://127.0.0.1:" in line:
            port = int(line.rsplit(":", 1)[1].strip().strip("/"))
    if port is None:
        proc.kill()
        pytest.fail("Azurite did not start: " + "".join(seen[-20:]))
    try:
        yield Azurite(f"https://127.0.0.1:{port}/{ACCOUNT}",
                      f"https://127.0.0.1:{port}/{{account}}", cert)
    finally:
        proc.send_signal(signal.SIGINT)  # Azurite closes its servers on Ctrl-C
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
