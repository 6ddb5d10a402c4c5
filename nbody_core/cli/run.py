"""``nbody run``: integrate a preset or a CSV of initial conditions and save an npz.

The trajectory is computed by the core's ``solve`` (any integrator of the registry) in
equal jitted chunks (one compilation) so a progress bar can follow long runs; the npz is
written atomically and holds ``t``, ``position``, ``velocity``, ``mass``, ``energy`` (plus
momenta) and a JSON ``metadata`` entry with every parameter, the units of every array,
package versions, the seed and the maximum relative energy error over EVERY step.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import nbody_core.defaults as defaults
from nbody_core.cli import check_output_path, exit_now_if_computing, one_line_errors, run_in_worker, seed

DEFAULT_MAX_SNAPSHOTS = 1000  # --save-every defaults to keep at most this many snapshots
DEFAULT_ADAPTIVE_SAVES = 100  # --save-interval defaults to the duration / this
PROGRESS_WORK_THRESHOLD = 2e8  # pair interactions above which "auto" shows a progress bar
PROGRESS_CHUNKS = 20
#: Relative energy error above which a run warns on stderr and flags its metadata (the
#: dashboard's ENERGY_WARNING_LEVEL).
ENERGY_WARNING_LEVEL = 1e-2
EXIT_ENERGY_ERROR = 3  # --max-energy-error exceeded


def _integrator_names() -> tuple[list[str], list[str]]:
    """(fixed-step, adaptive) integrator names, as the registry's records say."""
    from nbody_core.integrate.integrators import INTEGRATORS

    return list(INTEGRATORS.where(lambda i: not i.adaptive)), list(INTEGRATORS.where(lambda i: i.adaptive))



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
    source.add_argument(
        "--ic", metavar="FILE.csv",
        help="CSV with header m,x,y,z,vx,vy,vz, or example:bodies (shipped: the Sun and the inner "
        "planets at J2000, in au_msun_yr)",
    )
    source.add_argument("--n", type=int, metavar="N", help="number of bodies (scalable presets only)")
    source.add_argument("--seed", type=seed, default=0, help="PRNG seed for random presets (0 to 2**32-1, default 0)")
    source.add_argument(
        "--units",
        metavar="SYSTEM",
        help="unit system of --ic data (nbody, au_msun_yr, cgs, si, pc_msun_myr); sets the default G",
    )
    from nbody_core.physics.forces import FORCE_METHODS
    from nbody_core.physics.state import DTYPES

    fixed, adaptive = _integrator_names()
    integration = parser.add_argument_group("integration")
    integration.add_argument(
        "--integrator",
        help=f"fixed-step: {', '.join(fixed)}; adaptive: {', '.join(adaptive)} "
        f"(default: the preset's, see `nbody presets`; for --ic {defaults.FIXED_STEP_INTEGRATOR} when --dt or "
        f"--steps is given, else {defaults.ADAPTIVE_INTEGRATOR})",
    )
    integration.add_argument(
        "--t-end", type=float,
        help="END time (runs start at the initial conditions' time, 0 for presets and CSV files); "
        "fixed steps are made uniform so the run lands exactly on it (default: the preset's)",
    )
    fixed_group = parser.add_argument_group("fixed-step integrators")
    fixed_group.add_argument("--dt", type=float, help="time step (default: the preset's)")
    fixed_group.add_argument("--steps", type=int, help="number of steps (instead of --t-end)")
    fixed_group.add_argument(
        "--save-every",
        type=int,
        help=f"save every k-th step (default: at most {DEFAULT_MAX_SNAPSHOTS} snapshots)",
    )
    adaptive_group = parser.add_argument_group("adaptive integrators (no --dt: the step size adapts)")
    adaptive_group.add_argument(
        "--rtol", type=float, default=1e-13,
        help="relative error tolerance per step (default 1e-13; dopri8: ias15 controls its own steps)",
    )
    adaptive_group.add_argument(
        "--atol", type=float, help="absolute error tolerance per step (default: the --rtol value; dopri8)"
    )
    adaptive_group.add_argument(
        "--save-interval", type=float, metavar="T",
        help=f"time between snapshots (default: the duration / {DEFAULT_ADAPTIVE_SAVES})",
    )
    physics = parser.add_argument_group("physics")
    physics.add_argument("--softening", type=float, help="Plummer softening length (default: the preset's)")
    physics.add_argument("--G", type=float, dest="G", help="gravitational constant (default: the unit system's)")
    physics.add_argument(
        "--forces",
        default=defaults.FORCES,
        help=f"force method: {', '.join(FORCE_METHODS)} (default auto: the fastest exact kernel "
        "for the device, dtype and N)",
    )
    physics.add_argument("--dtype", default="float64", help=f"{' or '.join(DTYPES)} (default float64)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="FILE.npz", help="write the trajectory here (atomically)")
    output.add_argument("--movie", metavar="OUT.mp4|OUT.gif", help="also write an animation of the run (trails, energy error)")
    output.add_argument("--movie-fps", type=int, default=30, metavar="FPS", help="movie frames per second (default 30)")
    output.add_argument("--movie-seconds", type=float, default=3.0, metavar="S", help="movie duration (default 3)")
    output.add_argument("--movie-size", default="640x480", metavar="WxH", help="movie size in pixels (default 640x480)")
    output.add_argument("--movie-no-energy", action="store_true", help="draw the orbits only, no energy plot beside")
    output.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr: auto = long runs on a terminal",
    )
    output.add_argument(
        "--max-energy-error", type=float, metavar="X",
        help=f"exit with status {EXIT_ENERGY_ERROR} (after writing --out) when the maximum relative "
        "energy error over every step exceeds X; past 1%% a run always warns on stderr",
    )
    parser.set_defaults(handler=handle)


def _positive_finite(name: str, value) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _load_system(args):
    """(state, params, units, description, names) from --preset or --ic."""
    import jax

    from nbody_core.systems.initial_conditions import EXAMPLE_PREFIX, example_initial_conditions, solar_system_names
    from nbody_core.systems.presets import get_preset
    from nbody_core.io import read_initial_conditions_csv
    from nbody_core.physics.state import PhysicsParams
    from nbody_core.physics.units import get_unit_system

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
    from nbody_core.systems.constants import MAX_BODIES

    path, example_units = args.ic, None
    if args.ic.startswith(EXAMPLE_PREFIX):
        path, example_units = example_initial_conditions(args.ic)
        if args.units is not None and args.units != example_units:
            raise ValueError(f"--ic {args.ic} is in {example_units}, not {args.units}; leave out --units")
    units = get_unit_system(args.units or example_units or "nbody")
    state = read_initial_conditions_csv(path, max_bodies=MAX_BODIES, units=units.name)  # the presets' cap
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


def _resolve_steps(args, preset, t0: float) -> tuple[int, float, float | None, float]:
    """Fixed-step plan: ``(num_steps, dt, t_end, requested dt)`` (``t_end`` None with
    ``--steps``; ``dt`` <= the requested one, uniform steps landing on ``t_end``)."""
    from nbody_core.integrate.options import steps_for_duration, validate_run_options

    if args.save_interval is not None:
        raise ValueError("--save-interval applies to adaptive integrators; use --save-every with fixed steps")
    if args.atol is not None:
        raise ValueError("--atol applies to adaptive integrators")
    if args.t_end is not None and args.steps is not None:
        raise ValueError("give at most one of --t-end and --steps")
    dt = args.dt if args.dt is not None else (preset.dt if preset is not None else None)
    if dt is None:
        raise ValueError("--dt is required with --ic")
    validate_run_options(dt=dt)
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be a positive integer, got {args.steps}")
        return args.steps, dt, None, dt
    t_end = _end_time(args, preset, t0)
    num_steps, uniform_dt = steps_for_duration(t_end - t0, dt)
    return num_steps, uniform_dt, t_end, dt


def _end_time(args, preset, t0: float) -> float:
    t_end = args.t_end if args.t_end is not None else (preset.t_end if preset is not None else None)
    if t_end is None:
        raise ValueError("--t-end or --steps is required with --ic")
    _positive_finite("--t-end", t_end)
    if t_end <= t0:
        raise ValueError(f"--t-end is an end time and must be later than the start time {t0:g}, got {t_end!r}")
    return t_end


def _resolve_saves(args, preset, t0: float) -> tuple[int, float]:
    """Adaptive plan: ``(num_saves, t_end)``. ``--dt`` is taken as a --save-interval, with a note."""
    if args.steps is not None:
        raise ValueError("--steps applies to fixed-step integrators; give --t-end (and --save-interval)")
    if args.save_every is not None:
        raise ValueError("--save-every applies to fixed-step integrators; use --save-interval T")
    _positive_finite("--atol", args.atol)
    interval = args.save_interval
    if args.dt is not None:
        if interval is not None:
            raise ValueError("give --save-interval, not --dt, with an adaptive integrator")
        print(
            "nbody run: note: an adaptive integrator chooses its own steps; --dt is taken as the "
            "time between snapshots (say --save-interval)",
            file=sys.stderr,
        )
        interval = args.dt
    _positive_finite("--save-interval", interval)
    t_end = _end_time(args, preset, t0)
    if interval is None:
        return DEFAULT_ADAPTIVE_SAVES, t_end
    # Whole intervals; 1e-9 keeps 1.0 / 0.1 = 9.999... from making an 11th.
    return max(1, math.ceil((t_end - t0) / interval - 1e-9)), t_end


class _Completed(list):
    """Snapshot pieces finished so far (the core hands each over computed), so an
    interrupted run can save them without waiting for the next."""


def _concatenate(pieces):
    """One trajectory from the pieces that chunks completed (an interrupted run)."""
    import jax.numpy as jnp

    whole = ("mass", "units", "max_relative_energy_error")
    fields = {
        name: jnp.concatenate([getattr(p, name) for p in pieces]) for name in pieces[0]._fields if name not in whole
    }
    last = pieces[-1]
    return type(last)(
        mass=last.mass, units=last.units, max_relative_energy_error=last.max_relative_energy_error, **fields
    )


def _progress(progress_bar, completed):
    """``on_chunk(done, piece)`` for the core's loops: keep the piece, move the bar."""
    done = [0]

    def on_chunk(now, piece):
        completed.append(piece)
        if progress_bar is not None:
            progress_bar.update(now - done[0])
        done[0] = now

    return on_chunk


def _run(state, params, args, record, plan, progress_bar, completed):
    """One ``solve`` of any integrator; the plan's span and save options as its kind takes
    them. A run that stopped before its end (an adaptive cap or step-size underflow) is an
    error; one that went non-finite but ran to its end is written, and warned about."""
    from nbody_core.integrate.solution import RESULTS
    from nbody_core.integrate.solve import solve

    if record.adaptive:
        num_saves, t_end = plan
        span = dict(t_end=t_end, num_saves=num_saves)
        if "rtol" in dict(record.options):
            span.update(rtol=args.rtol, atol=args.rtol if args.atol is None else args.atol)
    else:
        num_steps, dt, t_end, requested_dt, save_every = plan
        # With an end time the core makes the steps uniform itself and lands exactly on it.
        span = dict(dt=dt, num_steps=num_steps) if t_end is None else dict(dt=requested_dt, t_end=t_end)
        span.update(save_every=save_every, track_energy=True)
    solution = solve(
        state, params=params, integrator=record, forces=args.forces, chunks=PROGRESS_CHUNKS,
        on_chunk=_progress(progress_bar, completed), **span,
    )
    stats = solution.stats
    if solution.result is not RESULTS.successful and stats.num_saves_reached < len(solution.trajectory.time) - 1:
        raise ValueError(f"{args.integrator} failed: {solution.message}")
    if not record.adaptive:
        return solution.trajectory, None
    return solution.trajectory, {
        "accepted_steps": stats.num_accepted_steps,
        "rejected_steps": stats.num_rejected_steps,
        "result": solution.result.name,
    }


def _write_movie(args, path, size, trajectory, units, *, name: str) -> None:
    """``--movie``: draw the saved snapshots; a tqdm bar on stderr only for a terminal."""
    from nbody_core.io.movie import write_movie

    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=round(args.movie_fps * args.movie_seconds), unit="frame", file=sys.stderr,
                   desc="nbody movie", leave=False)
    try:
        write_movie(
            path, trajectory.time, trajectory.position, trajectory.mass,
            None if args.movie_no_energy else trajectory.energy, fps=args.movie_fps, seconds=args.movie_seconds,
            size=size, units=units.name, title=name,
            progress=None if bar is None else (lambda done, total: bar.update(done - bar.n)),
        )
    finally:
        if bar is not None:
            bar.close()


def handle(args: argparse.Namespace) -> int:
    import numpy as np

    from nbody_core.physics.forces import get_force_method
    from nbody_core.io import atomic_write_bytes, trajectory_npz_bytes
    from nbody_core.provenance import provenance
    from nbody_core.integrate.integrators import get_integrator
    from nbody_core.integrate.options import validate_run_options
    from nbody_core.integrate.trajectory import first_nonfinite_index
    from nbody_core.physics.state import cast_state, get_dtype

    out_path = None if args.out is None else check_output_path(args.out)
    movie_path, movie_size = None, None
    if args.movie is not None:
        from nbody_core.io.movie import MOVIE_FORMATS, parse_size

        movie_path = Path(args.movie)
        if movie_path.suffix.lower() not in MOVIE_FORMATS:
            raise ValueError(f"--movie must end in .mp4 or .gif, got {movie_path.name!r}")
        # The same directory checks as --out (check_output_path wants .npz: ask it about one).
        check_output_path(str(movie_path.with_suffix(".npz")))
        movie_size = parse_size(args.movie_size)
        if not (1 <= args.movie_fps <= 60):
            raise ValueError(f"--movie-fps must be from 1 to 60, got {args.movie_fps}")
        if not (math.isfinite(args.movie_seconds) and 1 <= round(args.movie_fps * args.movie_seconds) <= 3600):
            raise ValueError(f"--movie-seconds must give 1 to 3600 frames, got {args.movie_seconds}")
    if args.integrator is not None:
        get_integrator(args.integrator)
    get_force_method(args.forces)
    dtype = get_dtype(args.dtype)
    if args.save_every is not None and args.save_every < 1:
        raise ValueError(f"--save-every must be a positive integer, got {args.save_every}")
    _positive_finite("--rtol", args.rtol)
    if args.max_energy_error is not None and not (args.max_energy_error >= 0 and math.isfinite(args.max_energy_error)):
        raise ValueError(f"--max-energy-error must be a finite number >= 0, got {args.max_energy_error!r}")

    state, params, units, preset, names = _load_system(args)
    if args.integrator is None:
        args.integrator = getattr(preset, "integrator", None) or defaults.default_integrator(
            fixed_step=args.dt is not None or args.steps is not None)
    record = get_integrator(args.integrator)
    is_adaptive = record.adaptive
    takes_tolerances = "rtol" in dict(record.options)
    if args.softening is not None:
        params = params._replace(softening=args.softening)
    if args.G is not None:
        params = params._replace(G=args.G)
    validate_run_options(params=params)
    get_force_method(args.forces).check("newtonian")
    t0 = float(np.asarray(state.time))
    if is_adaptive:
        plan = _resolve_saves(args, preset, t0)
        num_steps, dt, save_every = None, None, None
        total = plan[0]  # progress in save intervals
    else:
        num_steps, dt, t_end, requested_dt = _resolve_steps(args, preset, t0)
        save_every = args.save_every or max(1, math.ceil(num_steps / DEFAULT_MAX_SNAPSHOTS))
        plan = (num_steps, dt, t_end, requested_dt, save_every)
        total = num_steps
    _check_normal_masses(state.mass, dtype)
    state = cast_state(state, dtype)

    # An adaptive run's work is unknown beforehand: count it as one step per save interval.
    work = total * state.num_bodies**2
    show = args.progress == "always" or (
        args.progress == "auto" and work > PROGRESS_WORK_THRESHOLD and sys.stderr.isatty()
    )
    progress_bar = None
    if show:
        from tqdm import tqdm

        progress_bar = tqdm(
            total=total, unit="save" if is_adaptive else "step", file=sys.stderr, desc="nbody run", leave=False
        )
    started = time.perf_counter()
    completed = _Completed()  # chunks finished so far: what an interrupted run keeps
    interrupted = False
    try:
        try:
            trajectory, adaptive_stats = run_in_worker(_run, state, params, args, record, plan, progress_bar, completed)
        except KeyboardInterrupt:
            if out_path is None or not completed:
                raise
            trajectory, adaptive_stats, interrupted = _concatenate(list(completed)), None, True
        energy = np.asarray(trajectory.energy)
    finally:
        if progress_bar is not None:
            progress_bar.close()
    wall = time.perf_counter() - started

    bad = first_nonfinite_index(trajectory)
    # A non-finite run (reported below as one warning line) must not also spray numpy
    # RuntimeWarnings on stderr.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        relative_error = np.abs(energy - energy[0]) / abs(energy[0])
    # Over every step (tracked inside the core's loop), not only the saved snapshots.
    max_error = float(trajectory.max_relative_energy_error)
    energy_warning = not (max_error <= ENERGY_WARNING_LEVEL)  # NaN (a blow-up) warns too
    t_final = float(trajectory.time[-1])
    label = units.label
    metadata = {
        "source": {"preset": args.preset, "ic": args.ic, "n": int(state.num_bodies), "seed": args.seed},
        "body_names": names,
        "integrator": args.integrator,
        "adaptive": is_adaptive,
        # Fixed steps only: the step taken, the number of steps and the save cadence.
        "dt": dt,
        "num_steps": num_steps,
        "save_every": save_every,
        # Adaptive only: the time between snapshots, the tolerances and the steps it took.
        "save_interval": (t_final - t0) / plan[0] if is_adaptive and not interrupted else None,
        "rtol": args.rtol if takes_tolerances else None,
        "atol": (args.rtol if args.atol is None else args.atol) if takes_tolerances else None,
        "adaptive_stats": adaptive_stats,
        # Ctrl-C: the snapshots completed before it are saved; t_end says how far it got.
        "interrupted": interrupted,
        "t_start": float(trajectory.time[0]),
        "t_end": t_final,
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
        "final_relative_energy_error": float(relative_error[-1]) if np.isfinite(relative_error[-1]) else None,
        "max_relative_energy_error": max_error if math.isfinite(max_error) else None,
        "max_relative_energy_error_over": "every step",
        "energy_error_warning": energy_warning,
        "energy_warning_level": ENERGY_WARNING_LEVEL,
        "first_nonfinite_snapshot": bad,
        "wall_seconds_including_compile": round(wall, 3),
        **provenance(getattr(args, "command_line", None)),
    }
    if out_path is not None:
        atomic_write_bytes(out_path, trajectory_npz_bytes(trajectory, metadata))
    if movie_path is not None and not interrupted:
        _write_movie(args, movie_path, movie_size, trajectory, units, name=args.preset or Path(args.ic).name)
    if interrupted:
        print(
            f"nbody run: interrupted at t={t_final:.6g} {label('time')}; wrote the {len(energy)} "
            f"completed snapshots to {out_path} (metadata interrupted=true)",
            file=sys.stderr,
        )
        exit_now_if_computing(130)
        return 130
    name = args.preset or Path(args.ic).name
    if is_adaptive:
        tolerance = f" rtol={args.rtol:.3g}," if takes_tolerances else ""
        steps = (
            f"{args.integrator}{tolerance} {adaptive_stats['accepted_steps']} accepted + "
            f"{adaptive_stats['rejected_steps']} rejected steps"
        )
    else:
        steps = f"{args.integrator} dt={dt:.6g} x {num_steps} steps"
    summary = (
        f"{name}: {state.num_bodies} bodies, {steps} to t={t_final:.6g} {label('time')}, "
        f"{len(energy)} snapshots; relative energy error final {relative_error[-1]:.2e}, "
        f"max {max_error:.2e} (every step); {wall:.2f} s"
        + (f"; wrote {out_path}" if out_path is not None else "")
        + (f"; wrote {movie_path}" if movie_path is not None else "")
    )
    print(summary)
    # Nothing saved at all (no file, no movie) after a finite run: say how to save. A run that went
    # non-finite gets its warning alone (one line).
    if out_path is None and movie_path is None and bad is None:
        print("nbody run: nothing saved; add --out run.npz to save the trajectory "
              "(t, position, velocity, mass, energy and metadata)", file=sys.stderr)
    if bad is not None:
        print(
            f"nbody run: warning: the trajectory became non-finite at snapshot {bad} "
            f"(t={float(trajectory.time[bad]):.6g}); try a smaller --dt or more --softening",
            file=sys.stderr,
        )
        return 1
    if energy_warning:
        hint = "tighten --rtol" if is_adaptive else "try a smaller --dt or an adaptive --integrator"
        print(
            f"nbody run: warning: the relative energy error reached {max_error:.2e}, above "
            f"{ENERGY_WARNING_LEVEL:.0%}: this trajectory is not to be trusted; {hint}",
            file=sys.stderr,
        )
    if args.max_energy_error is not None and not (max_error <= args.max_energy_error):
        print(
            f"nbody run: error: the relative energy error {max_error:.2e} exceeds "
            f"--max-energy-error {args.max_energy_error:g} (exit {EXIT_ENERGY_ERROR})",
            file=sys.stderr,
        )
        return EXIT_ENERGY_ERROR
    return 0
