"""Shared links: the Simulate settings as URL query values, and back.

A copied link (``/app?preset=plummer&n=500&dt=0.0005``) opens the same setup. Values from a
URL are strings a student may have edited by hand: they go through the one validation boundary
(:func:`nbody_explorer.state.validation.checked_value`), refused in the words of the sidebar's labels
(:data:`SETTING_LABELS`, :func:`link_refusal`); :func:`url_values` writes the current settings
back. No Panel import.
"""

from __future__ import annotations

from typing import Any, Mapping

import param

from nbody_explorer.state.validation import checked_value, coerce

__all__ = ["FOLLOW_KEYS", "RECORD_KEYS", "SETTING_LABELS", "URL_PARAMETERS", "apply_link", "checked_value", "coerce",
           "link_text", "link_value", "url_values"]

#: URL query key for each synced parameter, in the order a URL is applied (preset first: it
#: sets dt and softening, which the URL may then override).
URL_PARAMETERS: dict[str, str] = {
    "preset": "preset",
    "num_bodies": "n",
    "seed": "seed",
    "eccentricity": "e",
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

#: The label the sidebar shows for each setting (refusals name it; app/views/simulate_controls.py
#: labels its widgets with these).
SETTING_LABELS = {
    "preset": "Preset", "num_bodies": "Bodies N", "seed": "Seed", "eccentricity": "Eccentricity e",
    "integrator": "Integrator",
    "forces": "Force method", "precision": "Precision", "dt": "dt (time step)", "softening": "Softening ε",
    "steps_per_frame": "Steps per frame", "frame_rate": "Speed (frames/s)", "trails": "Trails",
    "trail_length": "Trail length (frames)", "projection": "View", "color_by": "Colour by",
    "size_by_mass": "Size by mass",
    # Not the run's: the camera and the Record panel (:data:`FOLLOW_KEYS`, :data:`RECORD_KEYS`).
    "follow_com": "Follow centre of mass", "distance_scale": "Distances", "seconds": "Movie length (s)",
    "fps": "Frames per second", "suffix": "File type", "size": "Size (pixels)",
}

#: The other settings the Simulate tab shows, each a URL key too (parameter -> query key): the
#: scene's "Follow centre of mass" and "Distances" (to scale or log), and the Record panel's
#: settings (:class:`nbody_explorer.state.record.RecordSettings`).
FOLLOW_KEYS: dict[str, str] = {"follow_com": "follow", "distance_scale": "distances"}
RECORD_KEYS: dict[str, str] = {"seconds": "record_s", "fps": "record_fps", "suffix": "record_format",
                               "size": "record_size"}


def link_value(settings: param.Parameterized, name: str, raw: Any, *, units: Mapping[str, str] = {}):
    """``raw`` (a link's text or a widget's value) checked for ``settings.<name>``.

    Args:
        units: setting -> unit of its range, with a leading space (``{"dt": " time units"}``).

    Raises:
        Refused: "Speed (frames/s) must be a whole number from 1 to 60; kept 30."
    """
    return checked_value(settings.param[name], raw, label=SETTING_LABELS.get(name, name.replace("_", " ")),
                         kept=getattr(settings, name), units=units.get(name, ""))


def link_text(value: Any) -> str:
    """A setting as a URL value: ``true``/``false``, ``0.001``, ``640x480``, ``plummer``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


def url_values(settings: param.Parameterized, keys: Mapping[str, str] = URL_PARAMETERS) -> dict[str, str]:
    """Query key -> value string for every parameter in ``keys`` (parameter -> query key)."""
    return {key: link_text(getattr(settings, name)) for name, key in keys.items()}


def apply_link(settings: param.Parameterized, keys: Mapping[str, str], arguments: Mapping[str, Any]) -> list[str]:
    """Set the parameters of ``settings`` named by ``keys`` (parameter -> query key) from a
    link's ``arguments``, each through the validation boundary; returns ``"key=value: refusal"``
    for each value refused (that setting is kept)."""
    rejected, updates = [], {}
    for name, key in keys.items():
        if key not in arguments:
            continue
        raw = arguments[key]
        raw = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            updates[name] = link_value(settings, name, raw)
        except ValueError as error:  # Refused
            rejected.append(f"{key}={str(raw)[:40]}: {error}")
    settings.param.update(**updates)
    return rejected
