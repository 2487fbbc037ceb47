"""Which encryption modes the TDS server accepts (``--tls``): set on the server, enforced
by each session during PRELOGIN.

>>> TlsPolicy("strict") is TlsPolicy.STRICT
True
"""

from __future__ import annotations

from enum import Enum

__all__ = ["TlsPolicy"]


class TlsPolicy(Enum):
    """Which encryption modes the server accepts.

    DEFAULT: TDS 8.0 strict, or TDS 7.4 with the whole session encrypted.
    STRICT: only TDS 8.0 strict.
    OFF: additionally TDS 7.4 unencrypted and login-only encryption.
    """

    DEFAULT = "default"
    STRICT = "strict"
    OFF = "off"
