"""What the CLI's integration tests share: the console script and a clean environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["SCRIPT", "clean_env"]

SCRIPT = str(Path(sys.executable).with_name("azsql-bulk"))
# variables that would hand the subprocess an identity, a token or a CA the test did not choose
_DROP = ("AZURE_", "AZSQL_BULK_", "IDENTITY_", "MSI_", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without identity/CA variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env.update(extra)
    return env
