"""Load options declared once: field metadata that the CLI and the Airflow operator read.

Every field of :class:`~engine.options.TransferOptions` and
:class:`~engine.sources.SourceOptions` declares, in its metadata, how it is offered: the
help text, the kind of value it takes, how the command line spells it, and, where a
surface does not offer it, why not. ``azsql-bulk load`` builds its flags from these
declarations and ``AzureSqlBulkLoadOperator`` its keyword arguments, so the three cannot
drift apart; the field's default is the default everywhere, unless a surface says
otherwise (with a reason).

Metadata keys (plain dicts, so declaring needs no import): ``help`` and ``kind``, and
optionally ``flag``, ``metavar``, ``choices``, ``pair``, ``not_exposed`` and
``surface_defaults``, as in :class:`OptionSpec`.

>>> from dataclasses import dataclass, field
>>> @dataclass(frozen=True)
... class Example:
...     max_retries: int = field(default=5, metadata={"help": "replays", "kind": "int"})
>>> [(f.name, spec.flag, spec.kind) for f, spec in declared(Example)]
[('max_retries', '--max-retries', 'int')]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any

__all__ = ["KINDS", "SURFACES", "OptionSpec", "declared", "field_default", "options_from"]

#: the surfaces that offer load options
SURFACES = ("cli", "airflow")
#: value kinds: count (a whole number >= 1), int (a whole number >= 0), seconds (a
#: number >= 0), bytes (a size), text, choice (one of ``choices``), switch (on/off), names
#: (a list of names), pairs (a mapping; KEY=VALUE items on the command line), object (a
#: Python value: no command-line spelling)
KINDS = ("count", "int", "seconds", "bytes", "text", "choice", "switch", "names", "pairs",
         "object")


@dataclass(frozen=True)
class OptionSpec:
    """How one load option is offered.

    :param help: what it does, for ``--help`` and the operator's documentation.
    :param kind: one of :data:`KINDS`.
    :param flag: the command-line flag (default: ``--`` and the field name with dashes).
    :param metavar: the value's name in ``--help``.
    :param choices: for ``choice``: the values, as the engine spells them (either ``_`` or
        ``-`` is accepted between words).
    :param pair: for ``pairs``: how one item is spelled, and an example, e.g.
        ``("COLUMN=SQLTYPE", "price=decimal(18,2)")``.
    :param not_exposed: surface -> why it does not offer the option.
    :param surface_defaults: surface -> (its default, why it differs from the field's).
    """

    help: str
    kind: str
    flag: str = ""
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    pair: tuple[str, str] | None = None
    not_exposed: Mapping[str, str] = field(default_factory=dict)
    surface_defaults: Mapping[str, tuple[Any, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        for surfaces in (self.not_exposed, self.surface_defaults):
            unknown = set(surfaces) - set(SURFACES)
            if unknown:
                raise ValueError(f"unknown surface(s) {sorted(unknown)}; use {SURFACES}")
        if not all(str(why).strip() for why in self.not_exposed.values()):
            raise ValueError("say why the option is not exposed")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError("a choice, and only a choice, lists its choices")
        if (self.kind == "pairs") != (self.pair is not None):
            raise ValueError("pairs, and only pairs, say how an item is spelled")

    def exposed(self, surface: str) -> bool:
        """Whether ``surface`` (``cli`` or ``airflow``) offers the option."""
        return surface not in self.not_exposed

    def default_on(self, surface: str, f: dataclasses.Field[Any]) -> Any:
        """The default ``surface`` shows for field ``f``."""
        if surface in self.surface_defaults:
            return self.surface_defaults[surface][0]
        return field_default(f)

    def engine_choice(self, text: str) -> str:
        """The engine's spelling of a choice given as ``if-missing`` or ``if_missing``.

        :raises ValueError: not one of the choices.
        """
        folded = str(text).strip().lower().replace("-", "_")
        for choice in self.choices:
            if choice.replace("-", "_") == folded:
                return choice
        raise ValueError(f"{text!r} is not one of {', '.join(self.choices)}")


def declared(cls: type) -> list[tuple[dataclasses.Field[Any], OptionSpec]]:
    """Each field of the dataclass ``cls`` with its declaration, in field order.

    :raises TypeError: a field without a declaration, or with a malformed one.
    """
    out = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata or "kind" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} declares no help and kind: say how the "
                            "CLI and the operator offer it, or why they do not")
        try:
            spec = OptionSpec(**f.metadata)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{cls.__name__}.{f.name}: {exc}") from None
        if not spec.flag:
            spec = dataclasses.replace(spec, flag="--" + f.name.replace("_", "-"))
        out.append((f, spec))
    return out


def field_default(f: dataclasses.Field[Any]) -> Any:
    """The default of field ``f``: its value, or what its factory builds.

    :raises TypeError: the field has no default (a load option always has one).
    """
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise TypeError(f"option {f.name} has no default")


def options_from(cls: type, values: Mapping[str, Any], surface: str, **fixed: Any) -> Any:
    """Build ``cls`` from the values a surface was given, by field name.

    A value of None leaves the field at its default; names become a tuple, pairs a dict
    (from a mapping or KEY=VALUE tuples), choices the engine's spelling.

    :param cls: :class:`~engine.options.TransferOptions` or
        :class:`~engine.sources.SourceOptions`.
    :param values: field name -> the value given (names the surface does not offer are
        ignored).
    :param surface: ``cli`` or ``airflow``.
    :param fixed: values the surface sets itself (e.g. the CLI's ``progress``).
    :raises ConfigurationError: from ``cls``, for values that do not fit together.
    :raises ValueError: a choice that is not one of the choices.
    """
    kwargs: dict[str, Any] = {}
    for f, spec in declared(cls):
        value = values.get(f.name) if spec.exposed(surface) else None
        if value is None:
            continue
        if spec.kind == "names":
            value = (value,) if isinstance(value, str) else tuple(value)
        elif spec.kind == "pairs":
            value = dict(value)
        elif spec.kind == "choice":
            value = spec.engine_choice(value)
        kwargs[f.name] = value
    return cls(**{**kwargs, **fixed})
