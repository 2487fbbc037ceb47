"""Run Azurite (Microsoft's storage emulator) on loopback for tests and benchmarks.

Azurite comes from the copy `scripts/setup-azurite.sh` installs (``make setup``). It
listens on a port the OS picks, keeps its data in a given directory, serves HTTPS with a
certificate made here, and with ``oauth=True`` accepts bearer tokens (``--oauth basic``:
it checks issuer ``https://sts.windows.net/...``, audience ``https://storage.azure.com``
and lifetime, not the signature, and has no role assignments). It also accepts its
published development account key, which only the benchmark's library comparison uses.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACCOUNT = "devstoreaccount1"  # Azurite's built-in account
REPO = Path(__file__).resolve().parents[1]


class AzuriteError(RuntimeError):
    """Azurite is missing or did not start."""


def azurite_binary() -> str:
    """``$AZURITE`` (path to azurite-blob), else the version setup-azurite.sh pins."""
    if os.environ.get("AZURITE"):
        return os.environ["AZURITE"]
    script = (REPO / "scripts" / "setup-azurite.sh").read_text()
    version = re.search(r"^AZURITE_VERSION=(\S+)", script, re.MULTILINE)
    if version is None:
        raise AzuriteError("scripts/setup-azurite.sh pins no AZURITE_VERSION")
    root = os.environ.get("AZSQL_BULK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "azsql-bulk")
    binary = os.path.join(root, f"azurite-{version.group(1)}", "node_modules", ".bin",
                          "azurite-blob")
    if not os.access(binary, os.X_OK):
        raise AzuriteError(f"Azurite is not installed at {binary}: run `make setup` "
                           "(scripts/setup-azurite.sh) or set $AZURITE to an azurite-blob")
    return binary


def write_tls_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (clients trust it as a CA) and its key."""
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
    :param port: its port.
    """

    endpoint: str
    endpoint_template: str
    cert: Path
    port: int
    account: str = ACCOUNT

    def uri(self, container: str, path: str = "") -> str:
        return f"abfss://{container}@{self.account}/{path}"


@contextmanager
def running_azurite(directory: Path, *, oauth: bool = True,
                    startup_timeout: float = 120) -> Iterator[Azurite]:
    """Start Azurite's blob service over HTTPS in ``directory``; stop it on exit.

    :param directory: its data and TLS files.
    :param oauth: accept bearer tokens (``--oauth basic``).
    :raises AzuriteError: not installed, or it did not start in time.
    """
    cert, key = write_tls_files(directory)
    cmd = [azurite_binary(), "--blobHost", "127.0.0.1", "--blobPort", "0",
           "--location", str(directory / "data"), "--cert", str(cert), "--key", str(key),
           "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]
    if oauth:
        cmd += ["--oauth", "basic"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # keep draining, so Azurite never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    port = None
    deadline = time.monotonic() + startup_timeout
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
    try:
        if port is None:
            raise AzuriteError("Azurite did not start: " + "".join(seen[-20:]))
        yield Azurite(f"https://127.0.0.1:{port}/{ACCOUNT}",
                      f"https://127.0.0.1:{port}/{{account}}", cert, port)
    finally:
        proc.send_signal(signal.SIGINT)  # Azurite closes its servers on Ctrl-C
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
