"""Shared links: the Simulate settings as URL query values, and back.

A copied link (``/app?preset=plummer&n=500&dt=0.0005``) opens the same setup. Values from a
URL are strings a student may have edited by hand: :func:`coerce` turns one into the type
of its parameter (or refuses it), :func:`checked_value` also checks its bounds,
:func:`refusal_in_words` says why in the student's words,
and :func:`url_values` writes the current settings back. No Panel import.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import param

from app.limits import LIMITS

__all__ = ["URL_PARAMETERS", "checked_value", "coerce", "refusal_in_words", "url_values"]

#: URL query key for each synced parameter, in the order a URL is applied (preset first: it
#: sets dt and softening, which the URL may then override).
URL_PARAMETERS: dict[str, str] = {
    "preset": "preset",
    "num_bodies": "n",
    "seed": "seed",
    "integrator": "integrator",
    "forces": "forces",
    "precision": "precision",
    "dt": "dt",
    "softening": "softening",
    "steps_per_frame": "steps",
    "frame_rate": "fps",
    "trails": "trails",
    "trail_length": "trail",
    "projection": "view",
    "color_by": "color",
    "size_by_mass": "size",
}

#: How a refused link value names each setting (messages for students, not parameter names).
_SETTING_WORDS = {
    "preset": "system", "num_bodies": "number of bodies N", "seed": "random seed", "integrator": "integrator",
    "forces": "force method", "precision": "precision", "dt": "time step dt", "softening": "softening length",
    "steps_per_frame": "steps per frame", "frame_rate": "speed (frames per second)", "trails": "trails switch",
    "trail_length": "trail length", "projection": "view", "color_by": "colouring", "size_by_mass": "size switch",
}
_SETTING_UNITS = {"dt": " time units", "softening": " length units", "frame_rate": " frames/s"}


def coerce(parameter: param.Parameter, raw: Any):
    """A link value (a string, or an already typed value) as the type of ``parameter``.

    Raises:
        ValueError: the value is not of that type, not finite, or not one of a selector's
            choices (bounds are checked by the parameter itself).
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(parameter, param.Boolean):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if isinstance(parameter, param.Integer):
        value = float(raw)
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"expected an integer, got {raw!r}")
        return int(value)
    if isinstance(parameter, param.Number):
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {raw!r}")
        return value
    if isinstance(parameter, param.Selector):
        text = str(raw)
        if text not in parameter.objects:
            raise ValueError(f"unknown value {text!r}; choose one of {list(parameter.objects)}")
        return text
    return raw


def checked_value(parameter: param.Parameter, raw: Any):
    """:func:`coerce` ``raw``, then check it against ``parameter``'s bounds and choices: what
    setting it on a state object would check, without setting it.

    param has no public "validate without setting", so the value is set on a scratch object
    whose one parameter is a copy of ``parameter`` (public API only; ~0.25 ms, once per link
    value). The scratch class takes the owner's name, so a refusal reads as it would on the
    state object ("Number parameter 'SimulationState.dt' must be at least 1e-07").

    Raises:
        ValueError, TypeError: the value is refused (say it with :func:`refusal_in_words`).
    """
    value = coerce(parameter, raw)
    owner = getattr(parameter, "owner", None)
    scratch_class = type(getattr(owner, "__name__", None) or type(owner).__name__, (param.Parameterized,),
                         {parameter.name: copy.copy(parameter)})
    setattr(scratch_class(), parameter.name, value)
    return value


def refusal_in_words(settings: param.Parameterized, name: str, error: BaseException) -> str:
    """A refused link value said in the student's words: what the setting is, its allowed
    range with units, and that the current value is kept (not the internal
    "Number parameter 'SimulationState.dt' must be at least 1e-07")."""
    label = _SETTING_WORDS.get(name, name.replace("_", " "))
    parameter = settings.param[name]
    text = str(error)
    if isinstance(parameter, param.Number) and "parameter" in text and parameter.bounds is not None:
        low, high = parameter.bounds
        if name == "num_bodies":
            high = LIMITS.max_bodies
        unit = _SETTING_UNITS.get(name, "")
        side = "at least" if "at least" in text else "at most"
        limit = low if side == "at least" else high
        return f"the {label} must be {side} {limit:g}{unit}; kept {getattr(settings, name)!r}"
    return f"{text} (the {label}; kept {getattr(settings, name)!r})"


def url_values(settings: param.Parameterized, keys: Mapping[str, str] = URL_PARAMETERS) -> dict[str, str]:
    """Query key -> value string for every parameter in ``keys`` (parameter -> query key)."""
    out = {}
    for name, key in keys.items():
        value = getattr(settings, name)
        out[key] = ("true" if value else "false") if isinstance(value, bool) else (
            repr(value) if isinstance(value, float) else str(value)
        )
    return out
