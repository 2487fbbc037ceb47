"""``sp_datatype_info_100``: the SQL_TYPE_TIMESTAMP rows pyodbc sizes datetime parameters by."""

from __future__ import annotations

from azsql_emulator.datatype_info import COLUMNS, datatype_info


def test_timestamp_rows_start_with_datetime_as_sql_server_lists_them() -> None:
    result = datatype_info(93)
    assert len(COLUMNS) == 20 and [c.name for c in COLUMNS[:3]] == [
        "TYPE_NAME", "DATA_TYPE", "PRECISION"]
    assert all(len(row) == len(COLUMNS) for row in result.rows)
    # pyodbc reads the first row's PRECISION (COLUMN_SIZE): 23 means milliseconds
    assert [(r[0], r[1], r[2], r[14]) for r in result.rows] == [
        ("datetime", 93, 23, 3), ("smalldatetime", 93, 16, None), ("datetime2", 93, 27, 7)]
    assert result.rowcount == 3


def test_other_types_get_no_rows() -> None:
    for data_type in (12, -9, -3, 4):
        assert datatype_info(data_type).rows == []
    assert len(datatype_info(0).rows) == 3  # 0 = every type: the ones the emulator lists
