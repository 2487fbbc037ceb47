"""Options that can also come from the environment, their value parsers, and exit codes.

Every option of a command can be set as ``AZSQL_BULK_<NAME>`` (``--rows-per-batch`` ->
``AZSQL_BULK_ROWS_PER_BATCH``); an argument wins over the environment. A command declares
its options as :class:`Opt` values, adds them with :func:`add_options` and, after
argparse, fills the unset ones with :func:`resolve`.

>>> Opt("--rows-per-batch", "rows per batch").env
'AZSQL_BULK_ROWS_PER_BATCH'
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigurationError

__all__ = ["ENV_PREFIX", "EXIT_FAILED", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "Opt",
           "UsageError", "add_options", "byte_size", "format_bytes", "non_negative_float",
           "non_negative_int", "positive_int", "resolve", "split_list"]

ENV_PREFIX = "AZSQL_BULK_"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


class UsageError(ConfigurationError):
    """A bad argument or environment variable: exit code 2."""


@dataclass(frozen=True)
class Opt:
    """One option that can also come from ``AZSQL_BULK_<NAME>``.

    :param flag: ``--rows-per-batch``; the variable is named after it.
    :param help: what it does (the environment variable and default are appended).
    :param type: parses the text (argument or environment value); raise ValueError.
    :param default: used when neither the argument nor the environment gives one.
    :param choices: the allowed values (after ``type``).
    :param metavar: the value's name in the help.
    :param action: ``value``, ``flag`` (a switch) or ``append`` (repeatable; in the
        environment a comma-separated list).
    :param dest: the attribute of the parsed arguments (default: from the flag).
    :param show: how the help spells the default (default: ``str``).
    """

    flag: str
    help: str
    type: Callable[[str], Any] = str
    default: Any = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    action: str = "value"
    dest: str = ""
    show: Callable[[Any], str] = str

    def __post_init__(self) -> None:
        if not self.dest:
            object.__setattr__(self, "dest", self.flag[2:].replace("-", "_"))

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.flag[2:].replace("-", "_").upper()


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def add_options(group: Any, options: Iterable[Opt]) -> None:
    """Add ``options`` to an argparse parser or group, each defaulting to None (unset).

    :param group: the parser or argument group.
    :param options: the options.
    """
    for opt in options:
        extra = f"[env {opt.env}" + ("" if opt.default in (None, False, ())
                                     else f"; default {opt.show(opt.default)}") + "]"
        text = f"{opt.help} {extra}".replace("%", "%%")
        if opt.action == "flag":
            group.add_argument(opt.flag, dest=opt.dest, action="store_true", default=None,
                               help=text)
        elif opt.action == "append":
            group.add_argument(opt.flag, dest=opt.dest, action="append", default=None,
                               metavar=opt.metavar, help=text)
        elif opt.choices:  # argparse checks the choices after `type` (which may normalise)
            group.add_argument(opt.flag, dest=opt.dest, default=None, metavar=opt.metavar,
                               choices=opt.choices, type=_lenient(opt.type), help=text)
        else:
            group.add_argument(opt.flag, dest=opt.dest, default=None,
                               metavar=opt.metavar or opt.dest.upper(), help=text)


def _lenient(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse``, or the text itself when it fails (argparse then names the choices)."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, ConfigurationError):
            return text
    return convert


def _convert(opt: Opt, text: str, origin: str) -> Any:
    try:
        value = opt.type(text)
    except (ValueError, TypeError, ConfigurationError) as exc:
        raise UsageError(f"{origin}: {exc}") from None
    if opt.choices is not None and value not in opt.choices:
        raise UsageError(f"{origin}: {text!r} is not one of {', '.join(opt.choices)}")
    return value


def resolve(args: argparse.Namespace, options: Iterable[Opt],
            environ: Mapping[str, str] | None = None) -> None:
    """Fill every unset option from ``AZSQL_BULK_<NAME>``, else its default; parse values.

    :param args: parsed arguments (unset options are None); updated in place.
    :param options: the options to resolve.
    :param environ: the environment (default ``os.environ``).
    :raises UsageError: a value that does not parse, naming the option or the variable.
    """
    env = os.environ if environ is None else environ
    for opt in options:
        given = getattr(args, opt.dest, None)
        if opt.action == "flag":
            if given is None:
                raw = env.get(opt.env)
                if raw is None:
                    given = bool(opt.default)
                elif raw.strip().lower() in _TRUE | _FALSE:
                    given = raw.strip().lower() in _TRUE
                else:
                    raise UsageError(f"${opt.env}: expected 1/0, true/false, yes/no or on/off")
            setattr(args, opt.dest, given)
            continue
        if opt.action == "append":
            if given is None:
                raw = env.get(opt.env)
                texts = split_list(raw) if raw else []
                origin = f"${opt.env}"
            else:
                texts, origin = list(given), opt.flag
            values = [_convert(opt, t, origin) for t in texts]
            setattr(args, opt.dest, tuple(values) if values else tuple(opt.default or ()))
            continue
        if given is not None:
            setattr(args, opt.dest, _convert(opt, str(given), opt.flag))
        elif env.get(opt.env, "").strip():
            setattr(args, opt.dest, _convert(opt, env[opt.env].strip(), f"${opt.env}"))
        else:
            setattr(args, opt.dest, opt.default)


def split_list(text: str) -> list[str]:
    """Split an environment list on commas outside parentheses.

    >>> split_list("price=decimal(18,2), qty=int")
    ['price=decimal(18,2)', 'qty=int']
    """
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth <= 0:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def positive_int(text: str) -> int:
    """An integer of at least 1 (``10_000`` and ``10,000`` are fine too).

    >>> positive_int("10_000")
    10000
    """
    value = int(text.replace(",", "").replace("_", ""))
    if value < 1:
        raise ValueError(f"expected a whole number of at least 1, not {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer of at least 0."""
    value = int(text.replace(",", "").replace("_", ""))
    if value < 0:
        raise ValueError(f"expected a whole number of at least 0, not {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A number of at least 0."""
    value = float(text)
    if not value >= 0:
        raise ValueError(f"expected a number of at least 0, not {text!r}")
    return value


_SIZE = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$")
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "ki": 2**10, "kib": 2**10, "mi": 2**20,
          "mib": 2**20, "gi": 2**30, "gib": 2**30, "ti": 2**40, "tib": 2**40}


def byte_size(text: str) -> int:
    """A size in bytes: ``512MiB``, ``2GB``, ``1000000``.

    >>> byte_size("512MiB"), byte_size("2GB")
    (536870912, 2000000000)
    """
    match = _SIZE.match(text)
    unit = (match.group(2) or "").lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"expected a size such as 512MiB or 2GB, not {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def format_bytes(size: int) -> str:
    """The shortest exact spelling of ``size`` that :func:`byte_size` reads back.

    >>> format_bytes(512 * 2**20), format_bytes(2 * 10**9), format_bytes(1000001)
    ('512MiB', '2GB', '1000001')
    """
    for unit in ("TiB", "TB", "GiB", "GB", "MiB", "MB", "KiB", "kB"):
        scale = _UNITS[unit.lower()]
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)
