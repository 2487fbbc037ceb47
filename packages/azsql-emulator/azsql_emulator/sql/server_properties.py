"""What the server says about itself: ``@@VERSION`` and ``SERVERPROPERTY(...)``.

The values are Azure SQL Database's (12.0.2000.8, engine edition 5), so clients that
branch on them take their Azure path.

>>> SERVER_PROPERTIES["ENGINEEDITION"], VERSION.split(" - ")[1].split()[0]
(5, '12.0.2000.8')
"""

from __future__ import annotations

__all__ = ["SERVER_NAME", "SERVER_PROPERTIES", "VERSION"]

SERVER_NAME = "azsql-emulator"
VERSION = ("Microsoft SQL Azure (RTM) - 12.0.2000.8 \n\tJan  1 2025 00:00:00 \n\t"
           "Copyright (C) 2022 Microsoft Corporation\n\t"
           "azsql-bulk emulator: T-SQL translated by sqlglot and executed by DuckDB\n")
SERVER_PROPERTIES = {"ENGINEEDITION": 5, "EDITION": "SQL Azure", "PRODUCTVERSION": "12.0.2000.8",
                     "PRODUCTLEVEL": "RTM", "PRODUCTMAJORVERSION": "12",
                     "SERVERNAME": SERVER_NAME, "MACHINENAME": SERVER_NAME,
                     "COLLATION": "SQL_Latin1_General_CP1_CI_AS", "ISHADRENABLED": 0}
