"""``nbody run``: integrate a preset or a CSV of initial conditions and save an npz.

The trajectory is computed in equal jitted chunks (one compilation) so a progress bar can
follow long runs; the npz is written atomically and holds ``t``, ``position``,
``velocity``, ``mass``, ``energy`` (plus momenta) and a JSON ``metadata`` entry with every
parameter, the units of every array, package versions and the seed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

from nbody_core.cli import check_output_path, exit_now_if_computing, one_line_errors, run_in_worker, seed

FIXED_STEP_INTEGRATORS = ("euler", "leapfrog", "yoshida4", "rk4")
ADAPTIVE = "dopri8"
ADAPTIVE_CHOICES = (ADAPTIVE, "ias15")  # see nbody_core.adaptive.ADAPTIVE_INTEGRATORS
DEFAULT_MAX_SNAPSHOTS = 1000  # --save-every defaults to keep at most this many snapshots
PROGRESS_WORK_THRESHOLD = 2e8  # pair interactions above which "auto" shows a progress bar
PROGRESS_CHUNKS = 20



def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="integrate a preset or CSV initial conditions and save the trajectory",
        description=(
            "Integrate an N-body system and write t, position, velocity, mass, energy and "
            "JSON metadata to an npz file. Give exactly one of --preset or --ic, and at most "
            "one of --t-end or --steps."
        ),
    )
    # argparse's own errors (a non-number for --dt...) become one line too, no usage dump.
    one_line_errors(parser, "run")
    source = parser.add_argument_group("initial conditions (exactly one)")
    source.add_argument("--preset", metavar="NAME", help="a preset name (see `nbody presets`)")
    source.add_argument("--ic", metavar="FILE.csv", help="CSV with header m,x,y,z,vx,vy,vz")
    source.add_argument("--n", type=int, metavar="N", help="number of bodies (scalable presets only)")
    source.add_argument("--seed", type=seed, default=0, help="PRNG seed for random presets (0 to 2**32-1, default 0)")
    source.add_argument(
        "--units",
        metavar="SYSTEM",
        help="unit system of --ic data (nbody, au_msun_yr, cgs, si, pc_msun_myr); sets the default G",
    )
    integration = parser.add_argument_group("integration")
    integration.add_argument(
        "--integrator",
        help=f"one of {', '.join(FIXED_STEP_INTEGRATORS)} or {' / '.join(ADAPTIVE_CHOICES)} (adaptive); default: "
        "the preset's (see `nbody presets`), leapfrog for --ic",
    )
    integration.add_argument("--dt", type=float, help="time step (default: the preset's)")
    integration.add_argument(
        "--t-end", type=float, help="duration; the steps are made uniform so the run lands exactly on it"
    )
    integration.add_argument("--steps", type=int, help="number of steps (instead of --t-end)")
    integration.add_argument(
        "--save-every",
        type=int,
        help=f"save every k-th step (default: at most {DEFAULT_MAX_SNAPSHOTS} snapshots)",
    )
    integration.add_argument("--rtol", type=float, default=1e-13, help="dopri8 tolerance (default 1e-13)")
    physics = parser.add_argument_group("physics")
    physics.add_argument("--softening", type=float, help="Plummer softening length (default: the preset's)")
    physics.add_argument("--G", type=float, dest="G", help="gravitational constant (default: the unit system's)")
    physics.add_argument(
        "--forces",
        default="tiled",
        help="force method: tiled (default, fast hand-coded), analytic (reference), autodiff, autodiff_tiled",
    )
    physics.add_argument("--dtype", default="float64", help="float64 (default) or float32")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="FILE.npz", help="write the trajectory here (atomically)")
    output.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr: auto = long runs on a terminal",
    )
    parser.set_defaults(handler=handle)


def _positive_finite(name: str, value) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _load_system(args):
    """(state, params, units, description, names) from --preset or --ic."""
    import jax

    from ..initial_conditions import get_preset, solar_system_names
    from ..io import read_initial_conditions_csv
    from ..state import PhysicsParams
    from ..units import get_unit_system

    if (args.preset is None) == (args.ic is None):
        raise ValueError("give exactly one of --preset NAME or --ic FILE.csv")
    names = None
    if args.preset is not None:
        preset = get_preset(args.preset)
        if args.units is not None and args.units != preset.units:
            raise ValueError(f"--units applies to --ic data; preset {preset.name!r} is in {preset.units!r}")
        if args.n is not None and not preset.scalable:
            raise ValueError(f"--n applies to scalable presets only; {preset.name!r} has a fixed number of bodies")
        n = args.n if args.n is not None else preset.default_num_bodies
        state = preset.build(jax.random.key(args.seed), n)
        if preset.name == "solar_system":
            names = list(solar_system_names())
        return state, preset.params, get_unit_system(preset.units), preset, names
    if args.n is not None:
        raise ValueError("--n applies to scalable presets only, not to --ic files")
    from ..initial_conditions import MAX_BODIES

    units = get_unit_system(args.units or "nbody")
    state = read_initial_conditions_csv(args.ic, max_bodies=MAX_BODIES, units=units.name)  # the presets' cap
    return state, PhysicsParams(G=units.G), units, None, names


def _check_normal_masses(mass, dtype) -> None:
    """Refuse masses below the smallest normal number of ``dtype``: subnormal masses (1e-320)
    lose their precision and make the energy 0, so the relative energy error would be NaN."""
    import numpy as np

    mass = np.asarray(mass, dtype=np.float64)
    tiny = float(np.finfo(dtype).tiny)
    small = np.flatnonzero(mass < tiny)
    if small.size:
        index = int(small[0])
        raise ValueError(
            f"mass of body {index} ({mass[index]:.3g}) is below the smallest normal {np.dtype(dtype).name} "
            f"({tiny:.3g}); rescale the masses (choose other --units)"
            + (" or use --dtype float64" if np.dtype(dtype) != np.float64 else "")
        )


def _resolve_steps(args, preset) -> tuple[int, float]:
    from ..simulate import steps_for_duration, validate_run_options

    if args.t_end is not None and args.steps is not None:
        raise ValueError("give at most one of --t-end and --steps")
    dt = args.dt if args.dt is not None else (preset.dt if preset is not None else None)
    if dt is None:
        raise ValueError("--dt is required with --ic")
    validate_run_options(dt=dt)
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be a positive integer, got {args.steps}")
        return args.steps, dt
    t_end = args.t_end if args.t_end is not None else (preset.t_end if preset is not None else None)
    if t_end is None:
        raise ValueError("--t-end or --steps is required with --ic")
    _positive_finite("--t-end", t_end)
    return steps_for_duration(t_end, dt)


def _chunks(num_blocks: int, show_progress: bool) -> list[int]:
    """Split ``num_blocks`` save blocks into equal chunks (plus at most one shorter one)."""
    if not show_progress or num_blocks < 2:
        return [num_blocks] if num_blocks else []
    size = max(1, math.ceil(num_blocks / PROGRESS_CHUNKS))
    full, rest = divmod(num_blocks, size)
    return [size] * full + ([rest] if rest else [])


class _Completed(list):
    """Snapshot pieces finished so far, each computed before it is appended (JAX dispatches
    asynchronously), so an interrupted run can save them without waiting for the next."""

    def append(self, piece) -> None:
        import jax

        super().append(jax.block_until_ready(piece))


def _concatenate(pieces):
    import jax.numpy as jnp

    fields = {
        name: jnp.concatenate([getattr(p, name) for p in pieces])
        for name in pieces[0]._fields
        if name not in ("mass", "units")
    }
    return type(pieces[0])(mass=pieces[0].mass, units=pieces[0].units, **fields)


def _run_fixed(state, params, args, num_steps, dt, save_every, progress_bar, completed=None):
    import jax
    import jax.numpy as jnp

    from ..simulate import simulate

    blocks, remainder = divmod(num_steps, save_every)
    pieces = [] if completed is None else completed
    for chunk in _chunks(blocks, progress_bar is not None or completed is not None):
        trajectory = simulate(
            state, dt=dt, num_steps=chunk * save_every, save_every=save_every, params=params,
            integrator=args.integrator, forces=args.forces,
        )
        pieces.append(trajectory if not pieces else jax.tree.map(lambda x: x[1:], trajectory))
        state = trajectory.final_state
        if progress_bar is not None:
            jax.block_until_ready(state)
            progress_bar.update(chunk * save_every)
    if remainder:
        trajectory = simulate(
            state, dt=dt, num_steps=remainder, save_every=save_every, params=params,
            integrator=args.integrator, forces=args.forces,
        )
        pieces.append(trajectory if not pieces else jax.tree.map(lambda x: x[1:], trajectory))
        if progress_bar is not None:
            progress_bar.update(remainder)
    mass = pieces[0].mass
    fields = {
        name: jnp.concatenate([getattr(p, name) for p in pieces])
        for name in pieces[0]._fields
        if name not in ("mass", "units")
    }
    return type(pieces[0])(mass=mass, units=pieces[0].units, **fields), {}


def _run_adaptive(state, params, args, num_steps, dt, save_every, progress_bar, completed=None):
    import jax
    import jax.numpy as jnp

    from ..adaptive import simulate_adaptive

    num_saves = math.ceil(num_steps / save_every)
    interval = num_steps * dt / num_saves
    chunks = _chunks(num_saves, progress_bar is not None or completed is not None)
    # Equal chunks share one compilation; the save grid is the fixed-step one.
    pieces, totals = [] if completed is None else completed, {"accepted_steps": 0, "rejected_steps": 0}
    for chunk in chunks:
        if args.integrator == "ias15":  # t_end is an end time there; no tolerance option
            from ..ias15 import simulate_ias15

            trajectory, stats = simulate_ias15(
                state, t_end=float(state.time) + chunk * interval, num_saves=chunk, params=params,
                forces=args.forces,
            )
        else:
            trajectory, stats = simulate_adaptive(
                state, t_end=chunk * interval, num_saves=chunk, params=params,
                rtol=args.rtol, atol=args.rtol, forces=args.forces,
            )
        if stats["result"] != "successful":
            raise ValueError(f"{args.integrator} failed: {stats['result']}")
        totals["accepted_steps"] += stats["accepted_steps"]
        totals["rejected_steps"] += stats["rejected_steps"]
        pieces.append(trajectory if not pieces else jax.tree.map(lambda x: x[1:], trajectory))
        state = trajectory.final_state
        if progress_bar is not None:
            progress_bar.update(round(chunk * interval / dt))
    mass = pieces[0].mass
    fields = {
        name: jnp.concatenate([getattr(p, name) for p in pieces])
        for name in pieces[0]._fields
        if name not in ("mass", "units")
    }
    return type(pieces[0])(mass=mass, units=pieces[0].units, **fields), totals


def handle(args: argparse.Namespace) -> int:
    import jax.numpy as jnp
    import numpy as np

    from ..forces import FORCE_METHODS, acceleration_function
    from ..io import atomic_write_bytes, trajectory_npz_bytes
    from ..provenance import provenance
    from ..simulate import first_nonfinite_index, validate_run_options
    from ..state import cast_state

    out_path = None if args.out is None else check_output_path(args.out)
    if args.integrator is None:
        # The preset's own integrator: with it, its dt and t_end the run is right (pythagorean
        # needs an adaptive one; tests/test_presets.py). A bad name is reported below.
        from ..presets import PRESETS

        default = PRESETS.get(args.preset) if args.ic is None and isinstance(args.preset, str) else None
        args.integrator = default.integrator if default is not None else "leapfrog"
    if args.integrator not in FIXED_STEP_INTEGRATORS + ADAPTIVE_CHOICES:
        raise ValueError(
            f"unknown integrator {args.integrator!r}; choose one of "
            f"{', '.join(FIXED_STEP_INTEGRATORS + ADAPTIVE_CHOICES)}"
        )
    if args.forces not in FORCE_METHODS:
        raise ValueError(f"unknown force method {args.forces!r}; choose one of {', '.join(sorted(FORCE_METHODS))}")
    dtypes = {"float64": jnp.float64, "float32": jnp.float32}
    if args.dtype not in dtypes:
        raise ValueError(f"unknown dtype {args.dtype!r}; choose float64 or float32")
    if args.save_every is not None and args.save_every < 1:
        raise ValueError(f"--save-every must be a positive integer, got {args.save_every}")
    _positive_finite("--rtol", args.rtol)

    state, params, units, preset, names = _load_system(args)
    if args.softening is not None:
        params = params._replace(softening=args.softening)
    if args.G is not None:
        params = params._replace(G=args.G)
    validate_run_options(params=params)
    acceleration_function(args.forces, "newtonian")
    num_steps, dt = _resolve_steps(args, preset)
    save_every = args.save_every or max(1, math.ceil(num_steps / DEFAULT_MAX_SNAPSHOTS))
    _check_normal_masses(state.mass, dtypes[args.dtype])
    state = cast_state(state, dtypes[args.dtype])

    work = num_steps * state.num_bodies**2
    show = args.progress == "always" or (
        args.progress == "auto" and work > PROGRESS_WORK_THRESHOLD and sys.stderr.isatty()
    )
    progress_bar = None
    if show:
        from tqdm import tqdm

        progress_bar = tqdm(total=num_steps, unit="step", file=sys.stderr, desc="nbody run", leave=False)
    started = time.perf_counter()
    completed = _Completed()  # chunks finished so far: what an interrupted run keeps
    interrupted = False
    try:
        runner = _run_adaptive if args.integrator in ADAPTIVE_CHOICES else _run_fixed
        try:
            trajectory, adaptive_stats = run_in_worker(
                runner, state, params, args, num_steps, dt, save_every, progress_bar, completed
            )
        except KeyboardInterrupt:
            if out_path is None or not completed:
                raise
            trajectory, adaptive_stats, interrupted = _concatenate(list(completed)), {}, True
        energy = np.asarray(trajectory.energy)
    finally:
        if progress_bar is not None:
            progress_bar.close()
    wall = time.perf_counter() - started

    bad = first_nonfinite_index(trajectory)
    # A non-finite run (reported below as one warning line) must not also spray numpy
    # RuntimeWarnings on stderr.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmax of an all-NaN array
        relative_error = np.abs(energy - energy[0]) / abs(energy[0])
        max_error = float(np.nanmax(relative_error))
    t_final = float(trajectory.time[-1])
    label = units.label
    metadata = {
        "source": {"preset": args.preset, "ic": args.ic, "n": int(state.num_bodies), "seed": args.seed},
        "body_names": names,
        "integrator": args.integrator,
        "dt": dt,
        "num_steps": num_steps,
        # Ctrl-C: the snapshots completed before it are saved; t_end says how far it got.
        "interrupted": interrupted,
        "t_start": float(trajectory.time[0]),
        "t_end": t_final,
        "save_every": save_every,
        "rtol": args.rtol if args.integrator == ADAPTIVE else None,
        "atol": args.rtol if args.integrator == ADAPTIVE else None,
        "adaptive_stats": adaptive_stats or None,
        "forces": args.forces,
        "potential": "newtonian",
        "dtype": args.dtype,
        "params": {name: float(value) for name, value in zip(params._fields, params)},
        "unit_system": units.name,
        "units": {
            "t": label("time"),
            "position": label("length"),
            "velocity": label("velocity"),
            "mass": label("mass"),
            "energy": label("energy"),
            "linear_momentum": label("momentum"),
            "angular_momentum": label("angular_momentum"),
            "G": f"{label('length')}^3 / ({label('mass')} {label('time')}^2)",
        },
        "final_relative_energy_error": float(relative_error[-1]),
        "max_relative_energy_error": max_error if np.isfinite(relative_error).any() else None,
        "first_nonfinite_snapshot": bad,
        "wall_seconds_including_compile": round(wall, 3),
        **provenance(getattr(args, "command_line", None)),
    }
    if out_path is not None:
        atomic_write_bytes(out_path, trajectory_npz_bytes(trajectory, metadata))
    if interrupted:
        print(
            f"nbody run: interrupted at t={t_final:.6g} {label('time')}; wrote the {len(energy)} "
            f"completed snapshots to {out_path} (metadata interrupted=true)",
            file=sys.stderr,
        )
        exit_now_if_computing(130)
        return 130
    name = args.preset or Path(args.ic).name
    summary = (
        f"{name}: {state.num_bodies} bodies, {args.integrator} dt={dt:.6g} x {num_steps} steps "
        f"to t={t_final:.6g} {label('time')}, {len(energy)} snapshots; relative energy error "
        f"final {relative_error[-1]:.2e}, max {max_error:.2e}; {wall:.2f} s"
        + (f"; wrote {out_path}" if out_path is not None else "")
    )
    print(summary)
    if bad is not None:
        print(
            f"nbody run: warning: the trajectory became non-finite at snapshot {bad} "
            f"(t={float(trajectory.time[bad]):.6g}); try a smaller --dt or more --softening",
            file=sys.stderr,
        )
        return 1
    return 0
