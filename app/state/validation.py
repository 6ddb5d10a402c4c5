"""The one validation boundary for what a page, a link or a tampered client sends.

Contract: :func:`checked_value` turns a raw value (a link's text, a widget's value, whatever a
tampered websocket sent: ``"abc"``, NaN, ±inf, -1, a 400-digit number) into the type of a
``param`` parameter inside its bounds and choices, or raises :class:`Refused`, whose text is
one sentence in the user's words: the label they see, what is allowed, what is kept
("Bodies N must be a whole number from 2 to 5000; kept 64."). It never names a class, a
parameter's internal name or a Python type. :func:`refusal` says the same for values that are
not parameters (a slider's position, a predict field). No Panel import.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import param

__all__ = ["Refused", "allowed_words", "checked_choice", "checked_flag", "checked_number", "checked_text",
           "checked_value", "coerce", "kept_words", "range_words", "refusal"]

_MISSING = object()
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_MAX_TEXT = 200  # longer raw text is not worth parsing (and never quoted back whole)


class Refused(ValueError):
    """A value refused at the boundary; ``str()`` is the sentence shown to the user."""


def _number_text(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def kept_words(value: Any) -> str:
    """A kept value as the page shows it: ``64``, ``0.001``, ``on``/``off``, ``leapfrog``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "×".join(map(str, value))
    return str(value)


def _choices_words(choices: Iterable[Any]) -> str:
    names = [kept_words(choice) for choice in choices]
    if len(names) > 12:
        return f"one of its {len(names)} choices"
    return "one of " + ", ".join(names)


def allowed_words(parameter: param.Parameter, *, low: float | None = None, high: float | None = None,
                  units: str = "") -> str:
    """What ``parameter`` accepts, in words: "a whole number from 2 to 5000", "a number from
    1e-07 to 1 time units", "on or off (true or false)", "one of leapfrog, yoshida4, ...".

    Args:
        low, high: bounds to state instead of the parameter's own (a cap set by the server).
        units: appended to a number range (" time units").
    """
    if isinstance(parameter, param.Boolean):
        return "on or off (true or false)"
    if isinstance(parameter, param.Selector):
        return _choices_words(parameter.objects)
    if isinstance(parameter, param.Number):
        bounds = parameter.bounds or (None, None)
        low = bounds[0] if low is None else low
        high = bounds[1] if high is None else high
        inclusive = getattr(parameter, "inclusive_bounds", (True, True))[0]
        return range_words(low, high, whole=isinstance(parameter, param.Integer), units=units,
                           low_inclusive=inclusive)
    return "a valid value"


def range_words(low: float | None, high: float | None, *, whole: bool = False, units: str = "",
                low_inclusive: bool = True) -> str:
    """"a whole number from 2 to 5000", "a number greater than 0 time units", "a finite number"."""
    kind = "a whole number" if whole else "a number"
    if low is not None and high is not None and low_inclusive:
        return f"{kind} from {_number_text(low)} to {_number_text(high)}{units}"
    parts = []
    if low is not None:
        parts.append(f"{'at least' if low_inclusive else 'greater than'} {_number_text(low)}")
    if high is not None:
        parts.append(f"at most {_number_text(high)}")
    if not parts:
        return f"a finite {kind.split()[-1]}"
    return f"{kind} {' and '.join(parts)}{units}".replace("number at least", "number of at least")


def refusal(label: str, allowed: str, kept: Any = _MISSING) -> Refused:
    """The refusal sentence: "<label> must be <allowed>; kept <kept>." (kept left out if not given)."""
    label = (label or "This setting").strip().rstrip(":")
    text = f"{label} must be {allowed}"
    if kept is not _MISSING:
        text += f"; kept {kept_words(kept)}"
    return Refused(text + ".")


def coerce(parameter: param.Parameter, raw: Any):
    """``raw`` (a link's text, a widget's value) as the type of ``parameter``, without checking
    bounds.

    Raises:
        ValueError: not of that type (``"abc"`` for a number), not finite, not whole for an
            integer, not one of a selector's choices; the text is for logs, not for users
            (:func:`checked_value` words the refusal).
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str) and len(raw) > _MAX_TEXT:
        raise ValueError("text too long")
    if isinstance(parameter, param.Boolean):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("not true or false")
    if isinstance(parameter, param.Number):
        if isinstance(raw, bool) or not isinstance(raw, (str, numbers.Real)):
            raise ValueError("not a number")
        try:
            value = float(raw)
        except (ValueError, OverflowError):
            raise ValueError("not a number") from None
        if not math.isfinite(value):
            raise ValueError("not finite")
        if isinstance(parameter, param.Integer):
            if not value.is_integer():
                raise ValueError("not whole")
            return int(value)
        return value
    if isinstance(parameter, param.Selector):
        for choice in parameter.objects:
            if raw == choice or (isinstance(raw, str) and not isinstance(choice, str)
                                 and raw.replace("x", "×") == kept_words(choice)):  # "640x480" in a link
                return choice
        raise ValueError("not a choice")
    return raw


def checked_number(raw: Any, *, label: str, low: float | None = None, high: float | None = None,
                   whole: bool = False, kept: Any = _MISSING, units: str = "", allowed: str | None = None):
    """``raw`` as a finite number within ``[low, high]`` (whole if ``whole``), or a refusal
    ("Steps per frame must be a whole number from 1 to 200; kept 10.").

    Args:
        allowed: the words for what is allowed, instead of the range (a slider's positions).
    """
    allowed = allowed or range_words(low, high, whole=whole, units=units)
    parameter = param.Integer() if whole else param.Number()
    try:
        value = coerce(parameter, raw)
    except (ValueError, TypeError):
        raise refusal(label, allowed, kept) from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise refusal(label, allowed, kept)
    return value


def checked_choice(raw: Any, choices, *, label: str, kept: Any = _MISSING, names=None):
    """``raw`` if it is one of ``choices`` (compared as sent: ``1`` is not ``"1"``, ``True`` is
    not ``1``), else a refusal naming them (``names``: the words the page shows for them)."""
    for choice in choices:
        if raw == choice and type(raw) is type(choice):
            return choice
    raise refusal(label, _choices_words(names if names is not None else choices), kept)


def checked_flag(raw: Any, *, label: str, kept: Any = _MISSING) -> bool:
    """``raw`` if it is ``True`` or ``False`` (a checkbox, a toggle), else a refusal."""
    if isinstance(raw, bool):
        return raw
    raise refusal(label, "on or off", kept)


def checked_text(raw: Any, *, label: str, max_length: int, kept: Any = _MISSING) -> str:
    """``raw`` if it is text of at most ``max_length`` characters, else a refusal."""
    if isinstance(raw, str) and len(raw) <= max_length:
        return raw
    raise refusal(label, f"text of at most {max_length:,} characters", kept)


def _in_bounds(parameter: param.Number, value: float, low: float | None, high: float | None) -> bool:
    bounds = parameter.bounds or (None, None)
    low = bounds[0] if low is None else low
    high = bounds[1] if high is None else high
    inclusive_low, inclusive_high = getattr(parameter, "inclusive_bounds", (True, True))
    if low is not None and (value < low or (value == low and not inclusive_low)):
        return False
    return not (high is not None and (value > high or (value == high and not inclusive_high)))


def checked_value(parameter: param.Parameter, raw: Any, *, label: str | None = None, kept: Any = _MISSING,
                  high: float | None = None, units: str = ""):
    """``raw`` as a valid value of ``parameter`` (its type, bounds and choices), or a refusal.

    Args:
        parameter: the parameter the value is for (a class's or an instance's).
        raw: what arrived: text from a URL, a number, anything a tampered client sent.
        label: the label the user sees (default: the parameter's own ``label``).
        kept: the value that stays in place, named in the refusal.
        high: a tighter upper bound than the parameter's (a server cap).
        units: the unit of a number range, with its leading space (" time units").

    Raises:
        Refused: the sentence for the user ("Speed (frames/s) must be a whole number from 1 to
            60; kept 30.").
    """
    label = label or parameter.label or parameter.name
    try:
        value = coerce(parameter, raw)
    except (ValueError, TypeError):
        raise refusal(label, allowed_words(parameter, high=high, units=units), kept) from None
    if isinstance(parameter, param.Number) and not _in_bounds(parameter, value, None, high):
        raise refusal(label, allowed_words(parameter, high=high, units=units), kept)
    return value
