"""Find the native ODBC token shim and prepare the process environment it reads.

The shim (``libazsql_odbc_shim.so``, built from ``native/odbc_shim`` by CMake) is an ODBC
driver that unixODBC loads in place of Microsoft's: ``Driver=<shim_path()>``. It forwards
every call to the real driver named by ``$AZSQL_BULK_SHIM_TARGET`` and turns an
``AccessToken=<jwt>`` keyword into ``SQL_COPT_SS_ACCESS_TOKEN``, so turbodbc, pyodbc and
isql log in with a token without any pre-connect attribute. ``BulkCopy=yes`` likewise
becomes ``SQL_COPT_SS_BCP`` (the driver's ``bcp_*`` API works only on such a connection).

>>> from engine.driver import find_driver
>>> prepare_environment(find_driver().path)  # doctest: +SKIP
>>> f"Driver={shim_path()};Server=...;AccessToken={token}"  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

from engine.driver import DRIVER_PACKAGE, ENV_DRIVER
from engine.errors import DriverNotFoundError

__all__ = ["ACCESS_TOKEN_KEYWORD", "BULK_COPY_KEYWORD", "ENV_SHIM_TARGET", "SHIM_DRIVER_KEYWORD",
           "SHIM_LIBRARY", "prepare_environment", "shim_path"]

ENV_SHIM_TARGET = "AZSQL_BULK_SHIM_TARGET"
SHIM_LIBRARY = "libazsql_odbc_shim.so"
# Connection-string keywords the shim consumes; the real driver never sees them. Put
# AccessToken last: unixODBC's trace logs only the first 128 characters of the string.
ACCESS_TOKEN_KEYWORD = "AccessToken"  # noqa: S105 (a keyword, not a secret)
SHIM_DRIVER_KEYWORD = "ShimDriver"
# yes/no: set SQL_COPT_SS_BCP (1219) before connecting, for the driver's bulk-copy API.
BULK_COPY_KEYWORD = "BulkCopy"

_DISTRIBUTION = "azsql-bulk"
_RELATIVE = Path("engine") / "native" / SHIM_LIBRARY


def _candidates() -> list[Path]:
    # A wheel install has one package directory. An editable install ("redirect" mode)
    # lists site-packages/engine (where CMake installed the .so) beside the source tree.
    # The package is imported already (this module is in it): read its path from there.
    package = sys.modules[__name__.rpartition(".")[0]]
    found = [Path(p) / "native" / SHIM_LIBRARY for p in package.__path__]
    try:
        # Also when `engine` was imported from a source checkout on sys.path.
        found.append(Path(str(metadata.distribution(_DISTRIBUTION).locate_file(_RELATIVE))))
    except metadata.PackageNotFoundError:
        pass
    return found


def shim_path() -> Path:
    """Return the absolute path of the installed ``libazsql_odbc_shim.so``.

    :raises DriverNotFoundError: the package was installed without its native part.

    >>> shim_path().name  # doctest: +SKIP
    'libazsql_odbc_shim.so'
    """
    candidates = _candidates()
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise DriverNotFoundError(
        f"the ODBC token shim {SHIM_LIBRARY} is not installed (looked in {looked}); build it "
        "with `make setup` or `pip install -e .` in the source tree (needs cmake, a C compiler "
        "and unixodbc-dev), or reinstall the azsql-bulk wheel")


def prepare_environment(driver_path: str | os.PathLike[str]) -> None:
    """Tell the shim which real driver to load: set ``$AZSQL_BULK_SHIM_TARGET``.

    Call this before the first ODBC connection of the process, and before starting
    threads that connect. unixODBC allocates a driver's environment handle, the moment
    the shim loads the real driver, before any connection string reaches the driver, so a
    connection-string keyword cannot choose it. The first successful load is final for
    the process; ``ShimDriver=<path>`` in a connection string is checked against it.

    :param driver_path: path of Microsoft's ``libmsodbcsql-18.*.so``
        (``engine.driver.find_driver().path``).
    :raises DriverNotFoundError: the path is not a file.
    """
    path = Path(driver_path).expanduser().resolve()
    if not path.is_file():
        raise DriverNotFoundError(
            f"ODBC driver not found at {path}; set {ENV_DRIVER} to the path of "
            f"libmsodbcsql-18.*.so, or unset it to use the driver from the {DRIVER_PACKAGE} "
            "package (`azsql-bulk doctor` shows which driver is found)")
    os.environ[ENV_SHIM_TARGET] = str(path)
