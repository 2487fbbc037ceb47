"""Text and binary lengths as SQL Server counts them: UTF-16 code units, bytes.

Sizing a created column, splitting long text into parameters and widening a column all
measure values; this module does it once, cheaply (byte lengths from the offsets bound
UTF-16 lengths from above, and the native extension counts in one pass).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from engine.type_map import is_text_like

__all__ = ["longest_over", "max_utf16_units", "measure", "utf16_lengths"]

_ASTRAL = "[\U00010000-\U0010ffff]"  # two UTF-16 code units each

try:  # native/fastcast (built by the project's CMake); the pyarrow path without it
    from engine import _fastcast  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a source tree without the built extension
    _fastcast = None


def utf16_lengths(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Each text value's length in UTF-16 code units (how nvarchar(n) counts).

    >>> utf16_lengths(pa.array(["ab", "😀", None])).to_pylist()
    [2, 2, None]
    """
    return pc.add(pc.utf8_length(text), pc.count_substring_regex(text, _ASTRAL))


def max_utf16_units(text: pa.Array | pa.ChunkedArray, floor: int = 0) -> int:
    """The longest text value in UTF-16 code units, exact whenever it exceeds ``floor``
    (otherwise some length no greater than ``floor``).

    No per-character work when the byte lengths (from the offsets alone) are within
    ``floor``: a value's UTF-16 length never exceeds its UTF-8 byte length. Past that,
    code points bound it from below and ``code points + (bytes - code points) // 3``
    (each character outside the BMP: 4 bytes, 2 units) from above; the astral characters
    are counted (a regex, the slow part) only in values whose upper bound could still
    raise the maximum.

    :param text: a string or large_string array (chunked or not: nothing is copied).
    :param floor: the length below which the exact maximum does not matter.

    >>> max_utf16_units(pa.array(["ab", "😀😀x", None]))
    5
    >>> max_utf16_units(pa.array(["é" * 3]), floor=8) <= 8  # 6 bytes: not counted
    True
    """
    nbytes = pc.binary_length(text)
    top = pc.max(nbytes).as_py()
    if top is None or top <= floor:
        return int(top or 0)
    if _fastcast is not None:  # one pass in C, skipping values too short to matter
        chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
        best = 0
        for chunk in chunks:
            validity, offsets, data = chunk.buffers()
            if data is None:
                continue
            best = max(best, _fastcast.utf16_max(
                data, offsets, validity, chunk.offset, len(chunk),
                pa.types.is_large_string(chunk.type), max(best, floor)))
        return best
    points = pc.utf8_length(text)
    best = int(pc.max(points).as_py() or 0)
    bound = pc.add(points, pc.divide(pc.subtract(nbytes, points), 3))
    over = pc.fill_null(pc.greater(bound, max(best, floor)), False)
    if not pc.any(over).as_py():
        return best
    candidates = pc.filter(text, over)
    units = pc.add(pc.utf8_length(candidates), pc.count_substring_regex(candidates, _ASTRAL))
    return max(best, int(pc.max(units).as_py() or 0))


def longest_over(values: pa.ChunkedArray | pa.Array, t: pa.DataType, limit: int) -> int | None:
    """The longest value's length (UTF-16 units for text, bytes for binary) when it is over
    ``limit``, else None.

    Cheap when nothing is over: the byte length of text (from the offsets alone) bounds its
    UTF-16 length from above, so text is measured exactly only past that bound.

    :param values: one batch's column.
    :param t: its Arrow type (as planned).
    :param limit: the column's length.

    >>> import pyarrow as pa
    >>> longest_over(pa.array(["ab", "é" * 5]), pa.string(), 4), longest_over(
    ...     pa.array(["abc"]), pa.string(), 4)
    (5, None)
    """
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    storage = arr.storage if isinstance(arr.type, pa.BaseExtensionType) else arr
    if (pa.types.is_string(storage.type) or pa.types.is_large_string(storage.type)
            or pa.types.is_binary(storage.type) or pa.types.is_large_binary(storage.type)):
        bound = pc.max(pc.binary_length(storage)).as_py()
        if bound is None or bound <= limit:
            return None
    length = measure(arr, t)
    return length if length is not None and length > limit else None


def measure(values: pa.ChunkedArray | pa.Array, t: pa.DataType) -> int | None:
    """The longest value's length: UTF-16 units for text, bytes for binary (None: all NULL)."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if isinstance(arr.type, pa.BaseExtensionType):
        arr = arr.storage
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary  # the longest value is among the dictionary's
    if arr.null_count == len(arr):
        return None
    if is_text_like(t):
        result = max_utf16_units(arr.cast(pa.string()))
    else:
        if pa.types.is_fixed_size_binary(arr.type):
            return int(arr.type.byte_width)
        result = pc.max(pc.binary_length(arr.cast(pa.large_binary()))).as_py()
    return None if result is None else int(result)
