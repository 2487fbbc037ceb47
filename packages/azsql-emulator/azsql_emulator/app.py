"""The emulator as one object: identity provider, TDS server, SQL engine and control API."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from azsql_emulator.control import ControlServer
from azsql_emulator.identity.service import ENV_IDENTITIES, IdentityService
from azsql_emulator.resource_stats import ResourceStats
from azsql_emulator.server import TdsServer
from azsql_emulator.sql.engine import SqlEngine
from azsql_emulator.tls_policy import TlsPolicy

log = logging.getLogger("azsql_emulator")


class Emulator:
    """A local Azure SQL Database stand-in.

    :param host: loopback address to bind.
    :param port: TDS port; 0 picks a free one.
    :param state_dir: where certificates, keys and DuckDB files persist; None keeps the
        database in memory and the certificates in a temporary directory.
    :param database: name of the user database created besides ``master``.
    :param tls: ``default`` (strict, or TDS 7.4 fully encrypted), ``strict`` (TDS 8.0 only)
        or ``off`` (also unencrypted and login-only-encrypted sessions).
    :param token_lifetime: seconds an issued access token lasts.
    :param expire_sessions: end a session when the token it logged in with expires.
    :param principals_file: JSON file mapping identities to users and roles.
    :param sink: ``duckdb`` (store rows) or ``discard`` (parse and count parameter-array
        rows, store nothing: for benchmarks at a scale DuckDB would make the bottleneck).
    :param env_identity: whose variables :meth:`info` hands out as ``env``: one of
        ``ENV_IDENTITIES`` (only that identity's, see ``IdentityService.env_for``), or
        ``all`` (every identity at once plus ``SSL_CERT_FILE``: the old set, for tests).

    >>> with Emulator() as emu:  # doctest: +SKIP
    ...     print(emu.tds_port, emu.env["IDENTITY_ENDPOINT"])
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 state_dir: str | Path | None = None, database: str = "appdb",
                 tls: str = "default", token_lifetime: int = 3600,
                 expire_sessions: bool = False, principals_file: str | Path | None = None,
                 sink: str = "duckdb", env_identity: str = "managed-identity") -> None:
        if env_identity != "all" and env_identity not in ENV_IDENTITIES:
            raise ValueError(f"env identity must be 'all' or one of {', '.join(ENV_IDENTITIES)}, "
                             f"not {env_identity!r}")
        self.env_identity = env_identity
        self._tmp: str | None = None
        if state_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="azsql-emulator-")
            files_dir = Path(self._tmp)
        else:
            files_dir = Path(state_dir)
            files_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.database = database
        self.identity = IdentityService(
            files_dir, token_lifetime=token_lifetime, host=host,
            principals_file=Path(principals_file) if principals_file else None, database=database)
        self.sql = SqlEngine(self.state_dir, databases=("master", database))
        self.tds = TdsServer(
            host=host, port=port, identity=self.identity, sql=self.sql,
            tls=TlsPolicy(tls), expire_sessions=expire_sessions, sink=sink,
            default_database=database)
        self.resource_stats = ResourceStats(self.tds.faults)
        self.sql.dmv_source = self.resource_stats
        self.control = ControlServer(
            {"/metrics": self.metrics, "/sessions": self.tds.sessions_info,
             "/faults": self.tds.faults.pending},
            {"/token": self._mint_token, "/faults": self.tds.apply_fault},
            host=host)
        self._started = False

    # -- facts for clients ---------------------------------------------------------------------
    @property
    def tds_host(self) -> str:
        return self.tds.host

    @property
    def tds_port(self) -> int:
        return self.tds.port

    @property
    def ca_cert(self) -> str:
        return str(self.identity.ca_cert_path)

    @property
    def server_cert(self) -> str:
        return str(self.identity.server_cert_path)

    @property
    def control_url(self) -> str:
        return self.control.url

    @property
    def tenant_id(self) -> str:
        return self.identity.tenant_id

    @property
    def env(self) -> dict[str, str]:
        """Every identity's variables at once, for tests; clients want :meth:`env_for`."""
        return dict(self.identity.env)

    def env_for(self, identity: str = "managed-identity") -> dict[str, str]:
        """One identity's variables and the scoped CA trust (``IdentityService.env_for``).

        :param identity: managed-identity, service-principal, certificate or workload-identity.
        """
        return self.identity.env_for(identity)

    def info(self) -> dict[str, Any]:
        """The facts a client needs, as printed on the first stdout line of ``emulator start``."""
        return {
            "tds_host": self.tds_host, "tds_port": self.tds_port,
            "ca_cert": self.ca_cert, "server_cert": self.server_cert,
            "control_url": self.control_url, "tenant_id": self.tenant_id,
            "database": self.database, "authority_host": self.identity.authority_host,
            "env": self.env if self.env_identity == "all" else self.env_for(self.env_identity),
        }

    def metrics(self) -> dict[str, Any]:
        out = self.tds.metrics.snapshot()
        out["sessions"] = self.tds.session_count()
        sql = self.sql.metrics()
        out["rows_inserted"] = sql.get("rows_inserted", {})
        out["commits"] += sql.get("commits", 0)
        out["rollbacks"] += sql.get("rollbacks", 0)
        out["identity"] = self.identity.metrics()
        out["faults"] = self.tds.faults.pending()["injected"]
        return out

    def _mint_token(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /token``: issue an access token directly, for tests and tools.

        Body fields (all optional): ``appid``, ``oid``, ``audience``, ``lifetime`` (seconds,
        negative for an already expired token). The control API listens on loopback only.
        """
        unknown = set(body) - {"appid", "oid", "audience", "lifetime"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; allowed: appid, oid, audience, "
                             "lifetime")
        kwargs: dict[str, Any] = {k: body[k] for k in ("appid", "oid", "audience") if body.get(k)}
        if body.get("lifetime") is not None:
            kwargs["lifetime"] = int(body["lifetime"])
        return {"access_token": self.identity.issue_token(**kwargs), "token_type": "Bearer"}

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Emulator:
        self.identity.start()
        self.tds.start()
        self.control.start()
        self.resource_stats.start()
        self._started = True
        log.info("emulator listening on %s:%s", self.tds_host, self.tds_port)
        return self

    def close(self) -> None:
        if self._started:
            self.resource_stats.close()
            self.control.close()
            self.tds.close()
            self.identity.close()
            self._started = False
        self.sql.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
