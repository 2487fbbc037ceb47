"""Azure SQL's resource DMVs as the SQL engine shows them: columns, permission, rows.

The rows are not stored: a statement that reads a DMV gets a fresh Arrow table of it,
registered on the session's own DuckDB connection just before the statement runs, so
WHERE, ORDER BY, TOP and joins work as on any table. What the rows say comes from a
:class:`DmvSource` (the emulator's ``ResourceStats``); without one the views are empty
and no log-rate cap is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import duckdb
import pyarrow as pa

from azsql_emulator.errors import SqlError
from azsql_emulator.sql.server_properties import SERVER_NAME
from azsql_emulator.sqltypes import ColumnInfo, SqlType

__all__ = ["DMVS", "DmvSource", "DynamicView", "dmv_table", "register_dmv", "view_state_denied"]

SLO_NAME = "Emulator"
MAX_SIZE_MB = 1_048_576  # 1 TiB, a General Purpose database's largest size


class DmvSource(Protocol):
    """Where the DMVs' figures come from."""

    def resource_stats(self) -> list[tuple]:
        """end_time, avg_cpu_percent, avg_data_io_percent, avg_log_write_percent,
        avg_memory_usage_percent per interval."""

    def log_rate_cap(self) -> int | None:
        """The log-rate cap in bytes per second, or None."""

    def wait_stats(self) -> list[tuple]:
        """wait_type, waiting_tasks_count, wait_time_ms, max_wait_time_ms,
        signal_wait_time_ms."""


@dataclass(frozen=True)
class DynamicView:
    """A DMV: its SQL Server columns, their Arrow types and its DuckDB name."""

    name: str
    object_id: int  # system objects have negative ids
    columns: tuple[ColumnInfo, ...]
    arrow: tuple[pa.DataType, ...]

    @property
    def duck_name(self) -> str:
        return f'"temp"."main"."emu_{self.name}"'


_S = SqlType.parse
_PERCENT, _PA_PERCENT = _S("decimal(5,2)"), pa.decimal128(5, 2)
_BIGINT = _S("bigint")

DMVS: dict[tuple[str, str], DynamicView] = {
    ("sys", "dm_db_resource_stats"): DynamicView("dm_db_resource_stats", -1_258_123_123, (
        ColumnInfo("end_time", _S("datetime"), False),
        ColumnInfo("avg_cpu_percent", _PERCENT, True),
        ColumnInfo("avg_data_io_percent", _PERCENT, True),
        ColumnInfo("avg_log_write_percent", _PERCENT, True),
        ColumnInfo("avg_memory_usage_percent", _PERCENT, True)),
        (pa.timestamp("us"), _PA_PERCENT, _PA_PERCENT, _PA_PERCENT, _PA_PERCENT)),
    ("sys", "dm_user_db_resource_governance"): DynamicView(
        "dm_user_db_resource_governance", -1_258_123_139, (
            ColumnInfo("database_id", _S("int"), False),
            ColumnInfo("server_name", _S("nvarchar(128)"), False),
            ColumnInfo("database_name", _S("nvarchar(128)"), False),
            ColumnInfo("slo_name", _S("nvarchar(128)"), False),
            ColumnInfo("primary_max_log_rate", _BIGINT, True),
            ColumnInfo("max_db_max_size_in_mb", _BIGINT, True)),
        (pa.int32(), pa.string(), pa.string(), pa.string(), pa.int64(), pa.int64())),
    ("sys", "dm_db_wait_stats"): DynamicView("dm_db_wait_stats", -1_258_123_155, (
        ColumnInfo("wait_type", _S("nvarchar(60)"), False),
        ColumnInfo("waiting_tasks_count", _BIGINT, False),
        ColumnInfo("wait_time_ms", _BIGINT, False),
        ColumnInfo("max_wait_time_ms", _BIGINT, False),
        ColumnInfo("signal_wait_time_ms", _BIGINT, False)),
        (pa.string(), pa.int64(), pa.int64(), pa.int64(), pa.int64())),
}


def view_state_denied(database: str) -> SqlError:
    """300 (class 14) followed by 297 (class 16), as Azure SQL answers a DMV query
    without VIEW DATABASE STATE.

    :param database: the database the DMV belongs to.
    """
    follow = SqlError(297, "The user does not have permission to perform this action.", 16)
    return SqlError(300, f"VIEW DATABASE STATE permission denied on object '{database}', "
                         f"database '{database}'.", severity=14, also=(follow,))


def dmv_table(view: DynamicView, source: DmvSource | None,
              databases: Sequence[str]) -> pa.Table:
    """The rows ``view`` shows now.

    :param view: the DMV.
    :param source: the figures; None shows empty views and no cap.
    :param databases: every database, in DB_ID() order.
    """
    rows: list[tuple]
    if view.name == "dm_db_resource_stats":
        rows = source.resource_stats() if source is not None else []
    elif view.name == "dm_db_wait_stats":
        rows = source.wait_stats() if source is not None else []
    else:
        cap = source.log_rate_cap() if source is not None else None
        rows = [(i + 1, SERVER_NAME, name, SLO_NAME, cap, MAX_SIZE_MB)
                for i, name in enumerate(databases)]
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(view.columns)
    return pa.table([pa.array(list(values), type=t) for values, t in
                     zip(columns, view.arrow, strict=True)],
                    names=[c.name for c in view.columns])


def register_dmv(con: duckdb.DuckDBPyConnection, view: DynamicView, source: DmvSource | None,
                 databases: Sequence[str]) -> None:
    """Make ``view``'s current rows readable on ``con`` under :attr:`DynamicView.duck_name`.

    :param con: the session's DuckDB connection.
    :param view: the DMV.
    :param source: the figures.
    :param databases: every database, in DB_ID() order.
    """
    con.register(f"emu_{view.name}", dmv_table(view, source, databases))
