"""``nbody presets``: list the named starting points, one line each."""

from __future__ import annotations

import argparse

from ..initial_conditions import PRESETS
from ..units import get_unit_system


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "presets",
        help="list the presets, one line each",
        description="List the presets usable with `nbody run --preset NAME`.",
    )
    parser.set_defaults(handler=handle)


def preset_line(preset) -> str:
    """One line: name, body count, units, default step and duration, description."""
    units = get_unit_system(preset.units)
    time_unit = units.time_label
    bodies = f"N={preset.default_num_bodies} (--n)" if preset.scalable else f"N={_fixed_count(preset)}"
    return (
        f"{preset.name:<14} {bodies:<13} units={preset.units:<11} "
        f"dt={preset.dt:g} {time_unit}, t_end={preset.t_end:.6g} {time_unit}  {preset.description}"
    )


def _fixed_count(preset) -> int:
    import jax

    return int(preset.build(jax.random.key(0), None).num_bodies)


def handle(args: argparse.Namespace) -> int:
    for preset in PRESETS.values():
        print(preset_line(preset))
    return 0
