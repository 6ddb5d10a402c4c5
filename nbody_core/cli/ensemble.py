"""``nbody ensemble``: run M members of a preset (vmapped, sharded) and write training data.

One compressed npz, loadable in one line (``d = numpy.load("data.npz")``): ``parameters
[M, P]`` with ``parameter_names``, ``summaries [M, S]`` with ``summary_names``, every column
again by name, ``integrator``, ``ic_index``, ``dt_used``, ``num_steps``, ``time``/``energy
[M, T]``, with ``--save-trajectories`` ``position``/``velocity [M, T, n, 3]`` and ``mass
[M, n]``, and ``metadata`` (JSON: spec, seeds, versions, units, the command). The file is
written atomically, and the same arguments write the same bytes (no timestamps inside).

Sweep syntax (``--sweep`` may be repeated, one parameter each)::

    softening=0.001:0.1:log       a log-spaced range (grid: one point per member by default)
    dt=1e-3:1e-2:8:log            a range with its own 8 grid points
    virial_ratio=0.3:0.7          a linear range
    integrator=leapfrog,yoshida4  a list of values (the only form for integrator)

Finished chunks are checkpointed in ``OUT.chunks/`` (removed after success); ``--resume``
reuses the ones a run with the same arguments left behind.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbody_core.defaults as defaults
from nbody_core.cli import check_output_path, one_line_errors

# Options that change how a run proceeds but not what it computes: left out of the command
# recorded in the file, so a resumed or quiet run writes the same bytes as a plain one.
_NON_SEMANTIC = {"resume", "quiet", "workers"}



def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ensemble",
        help="run many members (seeds x swept parameters) with vmap and write one npz",
        description=(
            "Run M members of a preset, differing by seed and by swept parameters, vmapped in "
            "chunks and sharded over all devices; write parameters, summaries, optional "
            "trajectories and metadata to one npz. Sweeps: NAME=LOW:HIGH[:POINTS][:log] or "
            "NAME=V1,V2,...; NAME is one of dt, softening, virial_ratio, mass_ratio, "
            "eccentricity, integrator."
        ),
        epilog="example: nbody ensemble --preset plummer --n 64 --members 256 "
        "--sweep softening=0.001:0.1:log --steps 500 --seed 0 --out data.npz",
    )
    one_line_errors(parser, "ensemble")
    system = parser.add_argument_group("system")
    system.add_argument("--preset", default="plummer", metavar="NAME",
                        help="plummer (default), cold_collapse, rotating_disk, kepler, figure_eight, "
                        "pythagorean or solar_system")
    system.add_argument("--n", type=int, metavar="N", help="bodies per member (scalable presets)")
    system.add_argument("--seed", type=int, default=0, help="root seed of every random choice (default 0)")
    system.add_argument("--shared-initial-conditions", action="store_true",
                        help="every member starts from member 0's initial conditions")
    system.add_argument("--virial-ratio", type=float, help="fixed initial T/|U| (plummer, cold_collapse)")
    system.add_argument("--eccentricity", type=float, help="fixed eccentricity (kepler)")
    system.add_argument("--mass-ratio", type=float, help="fixed m2/m1 (kepler)")
    design = parser.add_argument_group("ensemble")
    design.add_argument("--members", type=int, default=16, metavar="M", help="number of members (default 16)")
    design.add_argument("--sweep", action="append", default=[], metavar="NAME=SPEC",
                        help="a swept parameter (repeatable), e.g. softening=0.001:0.1:log")
    design.add_argument("--design", choices=("grid", "random"), default="grid",
                        help="grid (Cartesian product, default) or random (seeded draws per member)")
    integration = parser.add_argument_group("integration")
    duration = integration.add_mutually_exclusive_group()
    duration.add_argument("--steps", type=int, default=500,
                          help="steps at --dt; every member runs to t_end = steps * dt (default 500)")
    duration.add_argument("--t-end", type=float, metavar="T",
                          help="duration instead of --steps: ceil(T / dt) steps, dt shrunk so every member "
                               "ends at exactly T")
    integration.add_argument("--dt", type=float, help="base time step (default: the preset's)")
    integration.add_argument("--softening", type=float, help="base softening (default: the preset's)")
    integration.add_argument("--integrator", default=defaults.FIXED_STEP_INTEGRATOR,
                             help=f"euler, leapfrog, yoshida4 or rk4 (default {defaults.FIXED_STEP_INTEGRATOR})")
    integration.add_argument("--forces", default=defaults.FORCES,
                             help="auto (default: the fastest exact kernel for the device and N), "
                                  "tiled, tiled_custom_vjp, pallas, analytic (reference), autodiff, "
                                  "autodiff_tiled")
    integration.add_argument("--potential", default=defaults.POTENTIAL,
                             help=f"pair potential (default {defaults.POTENTIAL})")
    integration.add_argument("--saves", type=int, metavar="K",
                             help="snapshots after t=0 (must divide --steps; default: its largest divisor <= 20)")
    integration.add_argument("--energy-tolerance", type=float, metavar="TOL",
                             help="rerun members whose max |dE/E| over the saves exceeds TOL at 4x smaller "
                             "steps, up to 3 times, and flag each member 'converged' (emulator training "
                             "data: 1e-3; default: no check)")
    execution = parser.add_argument_group("execution and output")
    execution.add_argument("--chunk-size", type=int, metavar="C",
                           help="members per device per compiled call (default: up to 128, fewer for large N)")
    execution.add_argument("--devices", type=int, metavar="D", help="use the first D devices (default: all)")
    execution.add_argument("--workers", type=int, metavar="W",
                           help="host threads sharing the chunks (default: one per CPU core per device; the "
                                "results do not depend on it)")
    execution.add_argument("--save-trajectories", action="store_true",
                           help="also store position/velocity [M, T, n, 3] and mass [M, n]")
    execution.add_argument("--out", required=True, metavar="FILE.npz", help="output file (written atomically)")
    execution.add_argument("--resume", action="store_true",
                           help="reuse chunks checkpointed in FILE.npz.chunks/ by an interrupted run")
    execution.add_argument("--quiet", "--no-progress", action="store_true",
                           help="no progress bar or summary line")
    parser.set_defaults(handler=handle, command_parser=parser)


def recorded_command(args) -> list[str]:
    """The canonical command line of ``args``: every option that differs from its default,
    in the parser's order (so argument order, --resume and --quiet do not change the file)."""
    command = ["nbody", "ensemble"]
    for action in args.command_parser._actions:
        if not action.option_strings or action.dest in _NON_SEMANTIC or action.dest == "help":
            continue
        value = getattr(args, action.dest, None)
        if value == action.default:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            command.append(flag)
        elif isinstance(value, list):
            for item in value:
                command += [flag, str(item)]
        else:
            command += [flag, str(value)]
    return command


def _clear_checkpoints(directory: Path) -> None:
    # Only files this command writes; a directory with anything else in it is left alone.
    if not directory.is_dir():
        return
    for chunk in directory.glob("chunk-*.npz"):
        chunk.unlink()
    # Temporary files of a checkpoint write interrupted by kill -9 (io.atomic_write_bytes).
    for partial in directory.glob(".chunk-*.npz.*.tmp"):
        partial.unlink()
    try:
        directory.rmdir()
    except OSError:
        pass


def steps_for_t_end(t_end: float, dt: float | None, preset: str) -> tuple[int, float]:
    """``(steps, dt)`` reaching ``t_end`` from t = 0: ``ceil(t_end / dt)`` steps of
    ``t_end / steps`` (at most ``dt``: the preset's when None), so uniform steps end at it.

    Raises:
        ValueError: a ``t_end`` or ``dt`` that is not a positive finite number.
    """
    import math

    from nbody_core.systems.presets import get_preset

    if not (math.isfinite(t_end) and t_end > 0):
        raise ValueError(f"--t-end must be a positive finite duration, got {t_end!r}")
    step = float(get_preset(preset).dt) if dt is None else dt
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"--dt must be a positive finite time step, got {step!r}")
    steps = max(1, math.ceil(t_end / step - 1e-9))
    return steps, t_end / steps


def handle(args) -> int:
    from nbody_core.ensembles import EnsembleSpec, parse_sweep, run_converged, run_ensemble

    out = check_output_path(args.out)
    num_steps, dt = args.steps, args.dt
    if args.t_end is not None:
        num_steps, dt = steps_for_t_end(args.t_end, args.dt, args.preset)
    spec = EnsembleSpec(
        system=args.preset,
        num_bodies=args.n,
        num_members=args.members,
        num_steps=num_steps,
        dt=dt,
        softening=args.softening,
        integrator=args.integrator,
        sweeps=tuple(parse_sweep(text) for text in args.sweep),
        design=args.design,
        seed=args.seed,
        shared_initial_conditions=args.shared_initial_conditions,
        num_saves=args.saves,
        save_trajectories=args.save_trajectories,
        forces=args.forces,
        potential=args.potential,
        virial_ratio=args.virial_ratio,
        eccentricity=args.eccentricity,
        mass_ratio=args.mass_ratio,
    )
    checkpoints = out.with_name(out.name + ".chunks")
    if not args.resume:
        _clear_checkpoints(checkpoints)
    bar = None
    # A bar redraws its line with carriage returns: only a terminal shows that as one line;
    # in a pipe or log file it is noise. The summary line below is written either way.
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=None, unit="chunk", desc=f"ensemble {spec.num_members} members", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    start = time.perf_counter()
    try:
        options = dict(chunk_size=args.chunk_size, devices=args.devices, progress=progress,
                       checkpoint_dir=checkpoints, workers=args.workers)
        if args.energy_tolerance is None:
            result = run_ensemble(spec, **options)
        else:
            result = run_converged(spec, energy_tolerance=args.energy_tolerance, **options)
    finally:
        if bar is not None:
            bar.close()
    result.save(out, command=recorded_command(args))
    _clear_checkpoints(checkpoints)
    if not args.quiet:
        timing = result.timing
        print(
            f"wrote {out}: {spec.num_members} members x {spec.num_bodies} bodies, "
            f"{timing['num_chunks']} chunks on {timing['num_devices']} device(s); compile "
            f"{timing['compile_s']:.1f} s, run {timing['run_s']:.2f} s "
            f"({timing['members_per_s']:.1f} members/s), total {time.perf_counter() - start:.1f} s"
            + (f", {timing['resumed_chunks']} chunks resumed" if timing["resumed_chunks"] else ""),
            file=sys.stderr,
        )
        convergence = result.execution.get("convergence")
        if convergence is not None:
            reruns = ", ".join(f"{r['rerun']} rerun at dt x {r['dt_factor']:g}" for r in convergence["rounds"])
            print(f"energy target {convergence['energy_tolerance']:g}: {reruns or 'no member rerun'}; "
                  f"{convergence['unconverged']} member(s) still over it (flagged converged = 0)", file=sys.stderr)
    return 0
