"""The one registry type: every named choice of the library (presets, integrators, force methods,
potentials, unit systems, precisions, inference problems, summaries, sweepable parameters…).

A :class:`Registry` is a read-only mapping from name to record with ``register``, ``get`` (one
error wording everywhere: ``unknown integrator 'x'; choose one of ['a', 'b']``), ``names`` and
``where``; it only grows through ``register`` (which refuses a taken name or a wrong type).
It imports nothing, so JAX-free registries (presets, units) stay instant to list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar, cast

__all__ = ["Registry"]

T = TypeVar("T")


def _a(word: str) -> str:
    """``word`` with its indefinite article: "an integrator", "a preset"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


class Registry(Mapping[str, T], Generic[T]):
    """Named records of one kind.

    Args:
        kind: what a record is, in words, for messages (``"integrator"``, ``"force method"``).
        entries: initial ``{name: record}``.
        hint: appended to the unknown-name message (e.g. where else to look).
        record_type: if given, ``get`` passes an instance of it through unchanged and
            ``register`` refuses anything else.
    """

    def __init__(
        self,
        kind: str,
        entries: Mapping[str, T] | None = None,
        *,
        hint: str = "",
        record_type: type | tuple[type, ...] | None = None,
    ):
        self.kind = kind
        self.hint = hint
        self.record_type = record_type
        self._entries: dict[str, T] = {}
        for name, record in (entries or {}).items():
            self.register(name, record)

    # -- Mapping
    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    # -- the registry verbs
    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._entries)

    def get(self, name, default=None) -> T:  # type: ignore[override]
        """The record called ``name`` (a record of ``record_type`` passes through).

        Raises:
            ValueError: ``unknown <kind> <name!r>; choose one of [...]`` (plus the hint),
                unless a ``default`` is given, which is then returned instead.
        """
        if self.record_type is not None and isinstance(name, self.record_type):
            return cast(T, name)
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            if default is not None:
                return default
            raise ValueError(self.unknown_message(name)) from None

    def unknown_message(self, name) -> str:
        """The one wording of an unknown name, for callers that check before they look up."""
        return f"unknown {self.kind} {name!r}; choose one of {sorted(self._entries)}" + (
            f" {self.hint}" if self.hint else "")

    def register(self, name: str, record: T, *, replace: bool = False) -> T:
        """Add ``record`` under ``name`` and return it.

        Raises:
            TypeError: ``record`` is not of ``record_type``.
            ValueError: ``name`` is empty or already taken (unless ``replace``).
        """
        if self.record_type is not None and not isinstance(record, self.record_type):
            expected = getattr(self.record_type, "__name__", str(self.record_type))
            raise TypeError(f"{_a(self.kind)} must be {_a(expected)}, got {type(record).__name__}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{_a(self.kind)} needs a non-empty string name, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{_a(self.kind)} named {name!r} is already registered (pass replace=True)")
        self._entries[name] = record
        return record

    def registering(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`register`: ``@REGISTRY.registering("name")``."""
        return lambda record: self.register(name, record)

    def unregister(self, name: str) -> T:
        """Remove the record called ``name`` and return it (a plugin or a test undoing its
        :meth:`register`).

        Raises:
            ValueError: the unknown-name message.
        """
        if name not in self._entries:
            raise ValueError(self.unknown_message(name))
        return self._entries.pop(name)

    def where(self, predicate: Callable[[T], bool]) -> tuple[str, ...]:
        """The names whose record satisfies ``predicate``, in registration order (e.g. the
        fixed-step integrators: ``INTEGRATORS.where(lambda i: not i.adaptive)``)."""
        return tuple(name for name, record in self._entries.items() if predicate(record))
