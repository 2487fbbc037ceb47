"""Finding Microsoft ODBC Driver 18: found, overridden, missing."""

from pathlib import Path

import pytest

from engine.driver import ENV_DRIVER, find_driver, linux_family
from engine.errors import DriverNotFoundError


def _os_release(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "os-release"
    path.write_text(text)
    return path


def _fake_libs(tmp_path: Path, family: str, arch: str, name="libmsodbcsql-18.6.so.2.1") -> Path:
    lib = tmp_path / "libs" / "linux" / family / arch / "lib"
    lib.mkdir(parents=True)
    (lib / name).write_bytes(b"\x7fELF")
    return tmp_path / "libs"


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv(ENV_DRIVER, raising=False)


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ('ID=debian\nVERSION_ID="12"\n', "debian_ubuntu"),
        ("ID=ubuntu\nID_LIKE=debian\n", "debian_ubuntu"),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "rhel"),
        ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', "debian_ubuntu"),
        ('ID="opensuse-leap"\nID_LIKE="suse opensuse"\n', "suse"),
    ],
)
def test_linux_family(tmp_path, text, family):
    assert linux_family(_os_release(tmp_path, text)) == family


def test_unknown_distribution_says_what_to_do(tmp_path):
    with pytest.raises(DriverNotFoundError, match=ENV_DRIVER):
        linux_family(_os_release(tmp_path, 'ID=gentoo\nPRETTY_NAME="Gentoo"\n'))


def test_found_in_package_layout(tmp_path):
    libs = _fake_libs(tmp_path, "rhel", "x86_64")
    info = find_driver(libs_dir=libs, os_release=_os_release(tmp_path, "ID=rhel\n"),
                       machine="x86_64")
    assert info.path == (libs / "linux/rhel/x86_64/lib/libmsodbcsql-18.6.so.2.1").resolve()
    assert info.version == "18.6.2.1"


def test_arm64_directory_is_found_for_aarch64(tmp_path):
    libs = _fake_libs(tmp_path, "debian_ubuntu", "arm64")
    info = find_driver(libs_dir=libs, os_release=_os_release(tmp_path, "ID=debian\n"),
                       machine="aarch64")
    assert "arm64" in info.path.parts


def test_wrong_family_is_missing(tmp_path):
    libs = _fake_libs(tmp_path, "suse", "x86_64")
    expected = "has no libmsodbcsql-18 for debian_ubuntu/x86_64"
    with pytest.raises(DriverNotFoundError, match=expected):
        find_driver(libs_dir=libs, os_release=_os_release(tmp_path, "ID=debian\n"),
                    machine="x86_64")


def test_explicit_argument_wins(tmp_path, monkeypatch):
    custom = tmp_path / "custom.so"
    custom.write_bytes(b"x")
    monkeypatch.setenv(ENV_DRIVER, str(tmp_path / "elsewhere.so"))
    info = find_driver(custom, libs_dir=tmp_path / "nothing")
    assert info.path == custom.resolve() and info.source == "argument"


def test_environment_override(tmp_path, monkeypatch):
    custom = tmp_path / "libmsodbcsql-18.3.so.1.1"
    custom.write_bytes(b"x")
    monkeypatch.setenv(ENV_DRIVER, str(custom))
    info = find_driver(libs_dir=tmp_path / "nothing")
    assert info.source == "environment" and info.version == "18.3.1.1"


def test_override_to_missing_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DRIVER, str(tmp_path / "gone.so"))
    with pytest.raises(DriverNotFoundError, match=f"from \\${ENV_DRIVER}"):
        find_driver()


def test_missing_package_names_the_package(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "mssql_python_odbc":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(DriverNotFoundError, match="pip install mssql-python-odbc"):
        find_driver()


def test_installed_package_has_a_driver_for_this_machine():
    info = find_driver()
    assert info.path.is_file()
    assert info.path.name.startswith("libmsodbcsql-18")
