"""Remote source addresses: ``abfs[s]://`` and ``az://`` URIs, and globs over object names.

Parsing only; reading objects is :mod:`engine.remote`'s.

>>> parse_uri("abfss://sales@contoso.dfs.core.windows.net/2026/*.parquet").blob_endpoint()
'https://contoso.blob.core.windows.net'
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from engine.errors import ConfigurationError

__all__ = ["ENV_ACCOUNT", "SCHEMES", "ObjectUri", "glob_regex", "is_remote", "parse_uri"]

SCHEMES = ("abfs", "abfss", "az")
ENV_ACCOUNT = "AZSQL_BULK_STORAGE_ACCOUNT"
DEFAULT_SUFFIX = "core.windows.net"
CLOUD_SUFFIXES = {"public": "core.windows.net", "usgov": "core.usgovcloudapi.net",
                   "china": "core.chinacloudapi.cn"}
GLOB_CHARS = re.compile(r"[*?\[]")
_FIX = ("give the storage account in the URI (abfss://CONTAINER@ACCOUNT.dfs.core.windows.net"
        "/PATH) or in StorageOptions(account=...) / $" + ENV_ACCOUNT)


def is_remote(text: object) -> bool:
    """True for a string naming an ``abfs://``, ``abfss://`` or ``az://`` object or prefix.

    :param text: anything a source may be.
    """
    if not isinstance(text, str):
        return False
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


@dataclass(frozen=True)
class ObjectUri:
    """A parsed storage URI.

    :param container: the container (ADLS Gen2: file system).
    :param account: the storage account, or None when the URI does not name it.
    :param suffix: the endpoint suffix, ``core.windows.net`` unless the host says otherwise.
    :param path: the object name or prefix inside the container (no leading ``/``).
    :param bare: show the account without a domain (an endpoint override decides the host).
    """

    container: str
    account: str | None
    suffix: str
    path: str
    bare: bool = False

    def with_account(self, account: str | None) -> ObjectUri:
        """This URI with ``account`` filled in when it named none."""
        if self.account or not account:
            return self
        return ObjectUri(self.container, account, self.suffix, self.path, self.bare)

    def blob_endpoint(self, template: str | None = None) -> str:
        """The Blob service URL of the account, from ``template`` (``{account}``) if given."""
        if not self.account:
            raise ConfigurationError(f"{self.display()} names no storage account; {_FIX}")
        if template:
            return template.replace("{account}", self.account).rstrip("/")
        return f"https://{self.account}.blob.{self.suffix}"

    def display(self, path: str | None = None) -> str:
        """The canonical ``abfss://container@account.dfs.<suffix>/path`` spelling.

        Every accepted spelling of one object maps to this string, so batch ids and
        fingerprints do not depend on which form a DAG used. With an endpoint override
        (Azurite, a private endpoint) it is ``abfss://container@account/path``.
        """
        where = (self.account if self.bare else f"{self.account}.dfs.{self.suffix}") \
            if self.account else "?"
        return f"abfss://{self.container}@{where}/{self.path if path is None else path}"


def parse_uri(text: str, *, account: str | None = None) -> ObjectUri:
    """Parse ``abfs[s]://container@account.<dfs|blob>.<suffix>/path`` or ``az://container/path``.

    :param text: the URI.
    :param account: the account for URIs that do not name one.
    :raises ConfigurationError: not a storage URI, or no container.
    """
    if not is_remote(text):
        raise ConfigurationError(f"{text!r} is not an abfs://, abfss:// or az:// URI")
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{text!r}: query strings and fragments are not supported "
                                 "(no SAS tokens: access comes from the Entra identity)")
    netloc, path = parts.netloc, parts.path.lstrip("/")
    suffix = DEFAULT_SUFFIX
    if "@" in netloc:
        container, host = netloc.split("@", 1)
        host = host.split(":", 1)[0].lower()
        found = re.fullmatch(r"([a-z0-9]+)\.(?:dfs|blob)\.(.+)", host)
        if found:
            account, suffix = found.group(1), found.group(2)
        elif "." not in host and host:
            account = host  # container@account: an endpoint override supplies the host
        else:
            raise ConfigurationError(
                f"{text!r}: the host must be ACCOUNT.dfs.<suffix> or ACCOUNT.blob.<suffix> "
                "(e.g. contoso.dfs.core.windows.net), or just the account name")
    else:
        container = netloc
    if not container:
        raise ConfigurationError(f"{text!r} names no container: write "
                                 "abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH")
    return ObjectUri(container, account, suffix, path)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob: ``**`` spans ``/``; ``*``, ``?`` and ``[...]`` stay in one segment.

    >>> bool(glob_regex("sales/**/*.parquet").fullmatch("sales/y=2026/m=01/p.parquet"))
    True
    >>> bool(glob_regex("sales/*.parquet").fullmatch("sales/y=2026/p.parquet"))
    False
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape("["))
                i += 1
            else:
                # fnmatch's class syntax ([!x] negation), kept inside one segment
                body = fnmatch.translate(pattern[i:end + 1])
                out.append(body[4:-3] if body.startswith("(?s:") else body)
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)
