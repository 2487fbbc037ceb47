"""Find Microsoft ODBC Driver 18 for SQL Server and check the libraries it needs.

The driver comes from the PyPI wheel ``mssql-python-odbc``, which ships one build
per Linux family (``libs/linux/<family>/<arch>/lib/libmsodbcsql-18.*.so.*``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DriverNotFoundError

ENV_DRIVER = "AZSQL_BULK_ODBC_DRIVER"
DRIVER_PACKAGE = "mssql-python-odbc"

# ID / ID_LIKE words of /etc/os-release -> the wheel's directory for that family.
_FAMILIES = {
    "debian": "debian_ubuntu", "ubuntu": "debian_ubuntu",
    "rhel": "rhel", "centos": "rhel", "fedora": "rhel", "rocky": "rhel",
    "almalinux": "rhel", "ol": "rhel", "amzn": "rhel", "azurelinux": "rhel", "mariner": "rhel",
    "suse": "suse", "sles": "suse", "opensuse": "suse", "opensuse-leap": "suse",
    "alpine": "alpine",
}
# uname -m -> directory names the wheel may use for that CPU.
_ARCHES = {"x86_64": ("x86_64", "amd64"), "amd64": ("x86_64", "amd64"),
           "aarch64": ("arm64", "aarch64"), "arm64": ("arm64", "aarch64")}
_DRIVER_GLOB = "libmsodbcsql-18.*.so*"
_VERSION_RE = re.compile(r"libmsodbcsql-(\d+)\.(\d+)\.so\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class DriverInfo:
    """Where the ODBC driver is and which build it is.

    :param path: absolute path of ``libmsodbcsql-18.*.so``.
    :param version: driver version from the file name, e.g. ``18.6.2.1``.
    :param source: ``argument``, ``environment`` or ``mssql-python-odbc <version>``.
    """

    path: Path
    version: str
    source: str


def linux_family(os_release: Path = Path("/etc/os-release")) -> str:
    """Return the wheel's family directory for this distribution (``debian_ubuntu``...).

    :raises DriverNotFoundError: the distribution is not one the wheel has a build for.
    """
    fields: dict[str, str] = {}
    try:
        for line in os_release.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip()] = value.strip().strip('"')
    except OSError as exc:
        raise DriverNotFoundError(
            f"cannot read {os_release} to tell the Linux family ({exc.strerror}); "
            f"set {ENV_DRIVER} to the path of libmsodbcsql-18.*.so") from None
    for word in [fields.get("ID", ""), *fields.get("ID_LIKE", "").split()]:
        if word.lower() in _FAMILIES:
            return _FAMILIES[word.lower()]
    raise DriverNotFoundError(
        f"{DRIVER_PACKAGE} has no driver build for distribution "
        f"{fields.get('PRETTY_NAME', fields.get('ID', 'unknown'))!r} (from {os_release}); "
        f"install Microsoft ODBC Driver 18 from Microsoft's packages and set {ENV_DRIVER} to "
        "the path of its libmsodbcsql-18.*.so")


def _version_of(path: Path) -> str:
    m = _VERSION_RE.search(path.name)
    return ".".join(m.groups()) if m else "unknown"


def _package_libs_dir() -> tuple[Path, str]:
    try:
        import mssql_python_odbc
    except ImportError:
        raise DriverNotFoundError(
            f"Microsoft ODBC Driver 18 not found: the Python package {DRIVER_PACKAGE} is not "
            f"installed; run `pip install {DRIVER_PACKAGE}` (or `make setup`), or set "
            f"{ENV_DRIVER} to the path of libmsodbcsql-18.*.so") from None
    return Path(mssql_python_odbc.get_libs_dir()), getattr(mssql_python_odbc, "__version__", "?")


def find_driver(
    explicit: str | os.PathLike[str] | None = None,
    *,
    libs_dir: Path | None = None,
    os_release: Path = Path("/etc/os-release"),
    machine: str | None = None,
) -> DriverInfo:
    """Locate ``libmsodbcsql-18.*.so``.

    Order: the ``explicit`` argument, then ``$AZSQL_BULK_ODBC_DRIVER``, then the build
    inside the installed ``mssql-python-odbc`` package that matches this Linux family and
    CPU architecture.

    :param explicit: a path that wins over everything else.
    :param libs_dir: the package's ``libs`` directory (tests point this elsewhere).
    :param os_release: the os-release file used to tell the Linux family.
    :param machine: CPU architecture as ``uname -m`` prints it (default: this machine's).
    :raises DriverNotFoundError: with the package or setting that fixes it.

    >>> find_driver().path.name  # doctest: +SKIP
    'libmsodbcsql-18.6.so.2.1'
    """
    for value, source in ((explicit, "argument"), (os.environ.get(ENV_DRIVER), "environment")):
        if value:
            path = Path(value).expanduser().resolve()
            if not path.is_file():
                origin = "the driver path argument" if source == "argument" else f"${ENV_DRIVER}"
                raise DriverNotFoundError(
                    f"ODBC driver not found at {path} (from {origin}); fix the path, or unset "
                    f"it to use the driver from the {DRIVER_PACKAGE} package")
            return DriverInfo(path, _version_of(path), source)

    version = "?"
    if libs_dir is None:
        libs_dir, version = _package_libs_dir()
    family = linux_family(os_release)
    arch = machine or platform.machine()
    candidates = _ARCHES.get(arch.lower(), (arch,))
    for arch_dir in candidates:
        lib = libs_dir / "linux" / family / arch_dir / "lib"
        found = sorted(lib.glob(_DRIVER_GLOB))
        if found:
            return DriverInfo(found[-1].resolve(), _version_of(found[-1]),
                              f"{DRIVER_PACKAGE} {version}")
    raise DriverNotFoundError(
        f"{DRIVER_PACKAGE} ({libs_dir}) has no libmsodbcsql-18 for {family}/{arch}; "
        f"reinstall it with `pip install --force-reinstall {DRIVER_PACKAGE}`, or set {ENV_DRIVER} "
        "to the path of a Microsoft ODBC Driver 18 installed another way")


# Shared libraries the driver and the driver manager need, and the Debian package of each.
REQUIRED_LIBRARIES = (
    ("odbc", "libodbc.so.2", "unixodbc"),
    ("ltdl", "libltdl.so.7", "libltdl7"),
    ("gssapi_krb5", "libgssapi_krb5.so.2", "libgssapi-krb5-2"),
)


def check_system_libraries() -> list[str]:
    """Return one error message per missing shared library (empty when all load).

    Each message names the Debian package that provides the library.
    """
    problems = []
    for _name, soname, package in REQUIRED_LIBRARIES:
        try:
            ctypes.CDLL(soname)
        except OSError:
            problems.append(f"{soname} cannot be loaded; install it with "
                            f"`apt-get install {package}` (or your distribution's equivalent)")
    return problems


def check_driver_loads(driver: DriverInfo) -> None:
    """dlopen the driver itself, so a missing dependency is reported by name.

    :raises DriverNotFoundError: the driver cannot be loaded, with the loader's reason.
    """
    missing = check_system_libraries()
    if missing:
        raise DriverNotFoundError("; ".join(missing))
    try:
        ctypes.CDLL(str(driver.path))
    except OSError as exc:
        raise DriverNotFoundError(
            f"the ODBC driver at {driver.path} does not load: {exc}; install the library it "
            "names (see `azsql-bulk doctor`)") from None
