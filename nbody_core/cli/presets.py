"""``nbody presets``: list the named starting points, one line each, with their parameters.

Reads only the JAX-free registry (:mod:`nbody_core.systems.presets`) and units, so it answers at
once instead of importing JAX.
"""

from __future__ import annotations

import argparse

from nbody_core.systems.presets import PRESETS, Preset
from nbody_core.physics.units import get_unit_system


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "presets",
        help="list the presets, one line each",
        description="List the presets usable with `nbody run --preset NAME`, with their default "
        "integrator, step, duration and initial-condition parameters.",
    )
    parser.set_defaults(handler=handle)


def preset_line(preset: Preset) -> str:
    """One line: name, body count, units, default integrator, step and duration, description."""
    time_unit = get_unit_system(preset.units).time_label
    bodies = f"N={preset.num_bodies} (--n)" if preset.scalable else f"N={preset.num_bodies}"
    return (
        f"{preset.name:<14} {bodies:<13} units={preset.units:<11} {preset.integrator:<9} "
        f"dt={preset.dt:g} {time_unit}, t_end={preset.t_end:.6g} {time_unit}  {preset.description}"
    )


def parameter_lines(preset: Preset) -> list[str]:
    """One indented line per initial-condition parameter: name, default, bounds, doc."""
    lines = []
    for parameter in preset.parameters:
        default = "not set" if parameter.default is None else f"{parameter.default:g}"
        lines.append(f"{'':<16}{parameter.name} = {default}  ({parameter.bounds_text()})  {parameter.doc}")
    return lines


def handle(args: argparse.Namespace) -> int:
    for preset in PRESETS.values():
        print(preset_line(preset))
        for line in parameter_lines(preset):
            print(line)
    return 0
