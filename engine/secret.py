"""A secret string that never shows itself: tokens and passwords are redacted at the type level.

>>> Secret("hunter2")
Secret('***')
"""

from __future__ import annotations

import hmac

__all__ = ["Secret"]


class Secret:
    """A string that never shows itself: ``repr``, ``str`` and formatting give ``***``.

    :param value: the secret text; read it back with :meth:`reveal`.

    >>> s = Secret("hunter2")
    >>> s, f"{s}", s.reveal()
    (Secret('***'), '***', 'hunter2')
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        object.__setattr__(self, "_value", str(value))

    def reveal(self) -> str:
        """The secret text itself: pass it on, never print it."""
        return self._value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        # Pickling (process pools) keeps the value; only its display is hidden.
        return (Secret, (self._value,))
