"""Emulator against the simulator: honest accuracy, honest speed, calibrated posteriors.

On a Plummer softening x virial-ratio box (random design, N bodies, leapfrog, every member
converged to |dE/E| <= 1e-3 by ``run_converged``):

* **learning curve**: the emulator (deep ensemble of MLPs) and the exact-GP baseline trained on
  the first members of one ensemble; RMSE and ±2 sd coverage on the model's test split and
  on a fresh ensemble (another seed).
* **error of the mean** (issue 27, item 3): a G x G grid over the box with ``--replicas``
  members at each point; per summary the debiased error of the mean over the scatter measured
  at those same points (``nbody_core.emulator.metrics.error_of_mean``: 0 is as good as
  infinitely many simulations), with 95 % bootstrap intervals over points, for the emulator
  and for baselines fitted on its own training split (training mean, linear, quadratic).
* **speed** (item 4): batch throughput in wall and process-CPU seconds per result and
  single-query latency, for the emulator, the simulator (vmapped ``run_ensemble``, compile
  excluded; one member jitted) and REBOUND (its C leapfrog at the same step, and IAS15).
* **coverage** (item 5): ``--observations`` synthetic observations (truth drawn from the
  prior over the box, one converged simulation each, every output observed); 2-D posteriors
  over both inputs with the emulator (full covariance; the diagonal for comparison) and with
  the simulator's synthetic likelihood (Wood 2010) on the replica grid, its mean and
  covariance interpolated bilinearly (log softening) onto the emulator's grid. Coverage of
  central 95 % intervals, and emulator against simulator posterior means in simulator sds.

    python benchmarks/bench_emulator.py                 # members 256 768, N = 64
    python benchmarks/bench_emulator.py --quick --out-dir /tmp/bench   # smoke run

Writes benchmarks/results/emulator.json and emulator.md (or into --out-dir) with the load
average: the machine is shared, only ratios measured side by side in one run mean much.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
BOX = {"softening": (0.01, 0.3), "virial_ratio": (0.3, 0.7)}
SWEEPS = ("softening=0.01:0.3:log", "virial_ratio=0.3:0.7")
TOLERANCE = 1e-3


def _spec(args, members, seed, sweeps=SWEEPS, design="random", **fixed):
    from nbody_core.ensembles import EnsembleSpec

    return EnsembleSpec(system="plummer", num_bodies=args.n, num_members=members, num_steps=args.steps, dt=args.dt,
                        sweeps=sweeps, design=design, seed=seed, **fixed)


def _converged(args, members, seed, **kwargs):
    from nbody_core.ensembles import run_converged

    started = time.perf_counter()
    result = run_converged(_spec(args, members, seed, **kwargs), energy_tolerance=TOLERANCE)
    return result, time.perf_counter() - started


def _data(result, outputs=None):
    from nbody_core.emulator import training_data_from_arrays

    metadata = json.loads(json.dumps(result.metadata(), default=str))
    return training_data_from_arrays(result.arrays(), metadata, outputs=outputs, energy_tolerance=TOLERANCE)


def _subset(data, count):
    keep = np.arange(count)
    return replace(data, inputs=data.inputs[keep], outputs=data.outputs[keep], members=data.members[keep])


def _timed(fn, repeats):
    """(median wall s, median process-CPU s) of ``repeats`` calls after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _rebound_run(state, softening, *, integrator, dt, t_end):
    import rebound

    sim = rebound.Simulation()
    sim.G, sim.softening, sim.integrator, sim.dt = 1.0, softening, integrator, dt
    for m, x, v in zip(np.asarray(state.mass), np.asarray(state.position), np.asarray(state.velocity)):
        sim.add(m=float(m), x=x[0], y=x[1], z=x[2], vx=v[0], vy=v[1], vz=v[2])
    sim.integrate(t_end)


def _speed(args, emulator, fresh_spec, log):
    from nbody_core.ensembles import member_initial_state, run_converged, run_ensemble, run_member

    inputs = np.column_stack([fresh_spec.table.parameters[n] for n in emulator.input_names])
    members = fresh_spec.num_members
    sim_wall, sim_cpu = _timed(lambda: run_ensemble(fresh_spec), 2)
    conv_wall, conv_cpu = _timed(lambda: run_converged(fresh_spec, energy_tolerance=TOLERANCE), 1)
    emu_wall, emu_cpu = _timed(lambda: emulator.predict(inputs), 20)
    big = np.repeat(inputs, 40, axis=0)
    big_wall, big_cpu = _timed(lambda: emulator.predict(big), 3)
    one_emu, _ = _timed(lambda: emulator.predict(inputs[0]), 200)
    one_sim, one_sim_cpu = _timed(lambda: run_member(fresh_spec, 0), 5)
    state = member_initial_state(fresh_spec, 0)
    softening = float(fresh_spec.table.parameters["softening"][0])
    t_end = fresh_spec.t_end
    reb_lf, reb_lf_cpu = _timed(lambda: _rebound_run(state, softening, integrator="leapfrog", dt=args.dt,
                                                      t_end=t_end), 5)
    reb_ias, reb_ias_cpu = _timed(lambda: _rebound_run(state, softening, integrator="ias15", dt=args.dt,
                                                        t_end=t_end), 3)
    speed = {
        "points": members, "big_batch": int(big.shape[0]), "member0_softening": softening,
        "batch": {
            "simulator (vmapped run_ensemble, dt 0.02 only)": {"wall_s": sim_wall / members,
                                                                "cpu_s": sim_cpu / members},
            "simulator (run_converged: reruns to 1e-3)": {"wall_s": conv_wall / members, "cpu_s": conv_cpu / members},
            f"emulator (batch of {members})": {"wall_s": emu_wall / members, "cpu_s": emu_cpu / members},
            f"emulator (batch of {big.shape[0]})": {"wall_s": big_wall / big.shape[0], "cpu_s": big_cpu / big.shape[0]},
            "REBOUND leapfrog (serial C, member 0)": {"wall_s": reb_lf, "cpu_s": reb_lf_cpu},
            "REBOUND IAS15 (serial C, member 0)": {"wall_s": reb_ias, "cpu_s": reb_ias_cpu},
        },
        "single": {"emulator": one_emu, "simulator (one member, jitted)": one_sim,
                   "REBOUND leapfrog": reb_lf, "REBOUND IAS15": reb_ias},
        "single_simulator_cpu_s": one_sim_cpu,
    }
    log(f"speed: emulator {emu_wall / members:.3g} s/result, simulator {sim_wall / members:.3g} s/result")
    return speed


def _accuracy(emulator, data, report, grid_inputs, grid_replicas):
    from nbody_core.emulator.metrics import BASELINES, error_of_mean, fit_baseline

    train = report.split.train
    models = {"emulator": lambda raw: emulator.predict(raw)[0]}
    for kind in BASELINES:
        models[kind] = fit_baseline(kind, data.inputs[train], data.outputs[train], input_log=data.input_log)
    out = {}
    for label, predict in models.items():
        metric = error_of_mean(predict(grid_inputs), grid_replicas)
        out[label] = {name: {"ratio": float(metric["ratio"][k]), "low": float(metric["low"][k]),
                             "high": float(metric["high"][k]), "scatter": float(metric["scatter"][k])}
                      for k, name in enumerate(data.output_names)}
    return out


def _interpolated_synthetic_likelihood(replicas, axes, fine_axes, observed):
    """Wood's synthetic likelihood from replicas on a coarse grid, its mean and covariance
    interpolated bilinearly onto the fine grid (a linear mix of covariances stays positive)."""
    from scipy.interpolate import RegularGridInterpolator

    from nbody_core.emulator.inference import gaussian_log_likelihood

    count, points, size = replicas.shape
    mean = replicas.mean(axis=0)
    residual = replicas - mean
    cov = np.einsum("rgi,rgj->gij", residual, residual) / (count - 1)
    shape = tuple(len(a) for a in axes)
    table = np.concatenate([mean, cov.reshape(points, -1)], axis=1).reshape(*shape, -1)
    mesh = np.stack(np.meshgrid(*fine_axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
    values = RegularGridInterpolator(axes, table, bounds_error=False, fill_value=None)(mesh)
    return gaussian_log_likelihood(values[:, :size], values[:, size:].reshape(-1, size, size), observed)


def _coverage(emulator, grid_axes, grid_replicas, observations, truths, emulator_grid):
    from nbody_core.emulator.inference import _summarise, emulator_posterior

    names = emulator.input_names
    log = emulator.input_log
    coarse = [np.log10(a) if lg else a for a, lg in zip(grid_axes, log)]
    rows = {"emulator (full covariance)": [], "emulator (diagonal)": [], "simulator (synthetic likelihood)": []}
    differences = []
    for obs, truth in zip(observations, truths):
        observed = dict(zip(emulator.output_names, map(float, obs)))
        full = emulator_posterior(emulator, observed, grid_points=emulator_grid)
        diagonal = emulator_posterior(emulator, observed, grid_points=emulator_grid, covariance="diagonal")
        fine = [np.log10(g) if lg else g for g, lg in zip(full.grids, log)]
        log_like = _interpolated_synthetic_likelihood(grid_replicas, coarse, fine, np.asarray(obs, float))
        simulated = _summarise(names, full.grids, log_like, 0.0, grid_replicas.shape[0] * grid_replicas.shape[1])
        for label, post in zip(rows, (full, diagonal, simulated)):
            rows[label].append([bool(post.interval[k][0] <= truth[k] <= post.interval[k][1]) for k in range(len(names))])
        differences.append(np.abs(full.mean - simulated.mean) / simulated.sd)
    differences = np.asarray(differences)
    return {
        "observations": len(truths), "emulator_grid": emulator_grid,
        "coverage": {label: {n: float(np.mean(np.asarray(hits)[:, k])) for k, n in enumerate(names)}
                     for label, hits in rows.items()},
        "mean_difference_in_sim_sd": {n: {"median": float(np.median(differences[:, k])),
                                          "p90": float(np.percentile(differences[:, k], 90)),
                                          "max": float(differences[:, k].max())} for k, n in enumerate(names)},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[256, 768])
    parser.add_argument("--n", type=int, default=64, help="bodies per member (default 64)")
    parser.add_argument("--steps", type=int, default=200, help="leapfrog steps at the base dt (default 200)")
    parser.add_argument("--dt", type=float, default=0.02, help="base step (default 0.02: t_end = 4)")
    parser.add_argument("--fresh", type=int, default=128, help="members of the fresh check ensemble")
    parser.add_argument("--grid", type=int, default=7, help="replica grid points per input (default 7)")
    parser.add_argument("--replicas", type=int, default=16, help="replicas per grid point (default 16)")
    parser.add_argument("--observations", type=int, default=200, help="synthetic observations (default 200)")
    parser.add_argument("--networks", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.n, args.steps, args.fresh, args.replicas = [32, 48], 8, 20, 24, 6
        args.networks, args.max_steps, args.grid, args.observations = 2, 200, 3, 6
    import jax

    import nbody_core

    nbody_core.enable_float64()  # float64 runs need JAX's 64-bit mode
    from nbody_core.emulator import TrainConfig, evaluate, train_emulator

    load_before = os.getloadavg()
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    train_result, train_seconds = _converged(args, max(args.members), seed=0)
    data = _data(train_result)
    log(f"training ensemble: {max(args.members)} members in {train_seconds:.1f} s, "
        f"{train_result.execution['convergence']}")
    fresh_result, _ = _converged(args, args.fresh, seed=1)
    fresh = _data(fresh_result, data.output_names)
    axes = [np.geomspace(*BOX["softening"], args.grid), np.linspace(*BOX["virial_ratio"], args.grid)]
    grid_sweeps = tuple(f"{n}={','.join(f'{v:.6g}' for v in a)}" for n, a in zip(BOX, axes))
    grid_result, grid_seconds = _converged(args, args.grid**2 * args.replicas, seed=2, sweeps=grid_sweeps,
                                           design="grid")
    grid_data = _data(grid_result, data.output_names)
    if grid_data.num_members != grid_result.num_members:
        raise RuntimeError("a replica member missed the energy target; the grid needs them all")
    # Grid design: member i runs point i mod G^2, points in itertools.product (softening-major) order.
    grid_replicas = grid_data.outputs.reshape(args.replicas, args.grid**2, -1)
    grid_inputs = grid_data.inputs.reshape(args.replicas, args.grid**2, -1)[0]
    log(f"replica grid: {grid_result.num_members} members in {grid_seconds:.1f} s")

    config = TrainConfig(num_networks=args.networks, max_steps=args.max_steps)
    curve, largest, largest_report = [], None, None
    for count in args.members:
        emulator, report = train_emulator(_subset(data, count), config)
        curve.append({"members": count, "train_s": report.seconds["train"], "steps_run": report.steps_run,
                      "test": report.metrics, "fresh": {"mlp": evaluate(emulator.predict, fresh.inputs,
                                                                        fresh.outputs, data.output_names)}})
        largest, largest_report = emulator, report
        log(f"members {count}: trained in {report.seconds['train']:.1f} s")
    accuracy = _accuracy(largest, _subset(data, max(args.members)), largest_report, grid_inputs, grid_replicas)
    speed = _speed(args, largest, fresh_result.spec, log)

    observed_result, _ = _converged(args, args.observations, seed=5)
    truths = np.column_stack([observed_result.table.parameters[n] for n in largest.input_names])
    observations = np.column_stack([observed_result.summaries[n] for n in largest.output_names])
    ok = observed_result.summaries["converged"] == 1
    coverage = _coverage(largest, axes, grid_replicas, observations[ok], truths[ok], emulator_grid=61)
    coverage["correlation"] = np.asarray(largest.correlation).round(3).tolist()
    log(f"coverage: {coverage['coverage']}")

    payload = {
        "benchmark": "emulator",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cores": os.cpu_count() or 1, "platform": platform.platform()},
        "versions": {"python": platform.python_version(), "jax": jax.__version__},
        "setup": {"system": "plummer", "num_bodies": args.n, "num_steps": args.steps, "dt": args.dt,
                  "sweeps": list(SWEEPS), "design": "random", "networks": args.networks, "energy_tolerance": TOLERANCE,
                  "training_ensemble_seconds": train_seconds, "convergence": train_result.execution["convergence"],
                  "grid": args.grid, "replicas": args.replicas},
        "outputs": list(data.output_names),
        "learning_curve": curve,
        "accuracy": accuracy,
        "speed": speed,
        "coverage": coverage,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "quick": args.quick,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "emulator.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out_dir / "emulator.md").write_text(markdown(payload))
    log(f"wrote {args.out_dir / 'emulator.json'} and emulator.md")
    return 0


def markdown(p) -> str:
    s = p["setup"]
    conv = s["convergence"]
    reruns = ", ".join(f"{r['rerun']} rerun at dt x {r['dt_factor']:g}" for r in conv["rounds"]) or "none rerun"
    outputs = p["outputs"]
    lines = [
        "# Emulator against the simulator",
        "",
        f"{p['date_utc']}, {p['machine']['cores']} cores, jax {p['versions']['jax']}, load average "
        f"{p['load_average_before'][0]:.1f} before / {p['load_average_after'][0]:.1f} after"
        + (" (quick smoke run)" if p["quick"] else "") + ". "
        f"Plummer N = {s['num_bodies']}, {s['num_steps']} leapfrog steps of {s['dt']} (members over "
        f"|dE/E| = {s['energy_tolerance']:g} rerun at smaller steps: {reruns}; {conv['unconverged']} left), random "
        f"design over {' x '.join('`' + w + '`' for w in s['sweeps'])}; deep ensemble of {s['networks']} MLPs. "
        "Test = the model's own held-out 15 % of members; fresh = a new ensemble (other seed).",
        "",
        "**Error of the mean over the scatter** (debiased, at the same points: a "
        f"{s['grid']} x {s['grid']} grid over the box, {s['replicas']} replicas each; 0 = as good as infinitely "
        "many simulations; 95 % bootstrap interval over points). Baselines fitted on the emulator's training split:",
        "",
        "| model | " + " | ".join(outputs) + " |",
        "|---|" + "---|" * len(outputs),
    ]
    for label, metrics in p["accuracy"].items():
        cells = [f"{metrics[n]['ratio']:.3f} ({metrics[n]['low']:.3f}–{metrics[n]['high']:.3f})" for n in outputs]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    emu, quad = p["accuracy"]["emulator"], p["accuracy"]["quadratic"]
    # Both at 0: both errors are below what the replicas can resolve (their mean's own noise).
    tied = [n for n in outputs if emu[n]["ratio"] == quad[n]["ratio"] == 0.0]
    lost = [n for n in outputs if emu[n]["ratio"] >= quad[n]["ratio"] and n not in tied]
    won = [n for n in outputs if n not in lost and n not in tied]
    overlap = [n for n in won if emu[n]["high"] >= quad[n]["low"]]
    verdict = ("The emulator beats the quadratic baseline on every summary" if not lost and not tied else
               f"The emulator beats the quadratic baseline on {', '.join(won) or 'no summary'}"
               + (f" and does **not** on {', '.join(lost)}" if lost else ""))
    if overlap:
        verdict += f" (point estimates; the intervals overlap on {', '.join(overlap)})"
    if tied:
        verdict += (f"; on {', '.join(tied)} both are below what {s['replicas']} replicas resolve "
                    "(debiased error 0), a tie")
    lines += ["", verdict + ".", ""]
    lines += [
        "**Learning curve** (RMSE per summary; in parentheses the fraction inside ±2 sd):",
        "",
        "| members | model | " + " | ".join(outputs) + " |",
        "|---|---|" + "---|" * len(outputs),
    ]
    for row in p["learning_curve"]:
        for label, metrics in (("MLP test", row["test"]["mlp"]), ("GP test", row["test"].get("gp")),
                               ("MLP fresh", row["fresh"]["mlp"])):
            if metrics is None:
                continue
            cells = [f"{metrics[n]['rmse']:.4g} ({metrics[n]['coverage_2sigma']:.0%})" for n in outputs]
            lines.append(f"| {row['members']} | {label} | " + " | ".join(cells) + " |")
    sp = p["speed"]
    emulator_single = sp["single"]["emulator"]
    lines += [
        "",
        f"**Speed** (compile excluded; median of repeats; CPU = process CPU seconds, both cores): batch throughput "
        f"on {sp['points']} fresh points, and one query. REBOUND runs member 0 (softening "
        f"{sp['member0_softening']:.3g}) serially in C.",
        "",
        "| batch | wall s per result | CPU s per result | emulator faster (wall / CPU) |",
        "|---|---|---|---|",
    ]
    emu_batch = sp["batch"][f"emulator (batch of {sp['points']})"]
    for label, item in sp["batch"].items():
        ratio = "" if label.startswith("emulator") else (f"{item['wall_s'] / emu_batch['wall_s']:,.3g}x / "
                                                         f"{item['cpu_s'] / emu_batch['cpu_s']:,.3g}x")
        lines.append(f"| {label} | {item['wall_s']:.3g} | {item['cpu_s']:.3g} | {ratio} |")
    lines += ["", "| one query | latency s | emulator faster |", "|---|---|---|"]
    for label, seconds in sp["single"].items():
        lines.append(f"| {label} | {seconds:.3g} | {'' if label == 'emulator' else f'{seconds / emulator_single:,.3g}x'} |")
    c = p["coverage"]
    names = list(next(iter(c["coverage"].values())))
    lines += [
        "",
        f"**Coverage of central 95 % intervals** over {c['observations']} synthetic observations (truth drawn from "
        "the prior over the box, one converged simulation each, every output observed, both inputs inferred on a "
        f"{c['emulator_grid']} x {c['emulator_grid']} grid). Simulator side: Wood's synthetic likelihood from the "
        "replica grid (mean and full covariance interpolated bilinearly in log softening). Binomial sd of a "
        f"coverage at 95 % over {c['observations']}: {np.sqrt(0.95 * 0.05 / max(c['observations'], 1)):.3f}. "
        f"Learned correlation of the outputs' scatter: {c['correlation']}.",
        "",
        "| likelihood | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, row in c["coverage"].items():
        lines.append(f"| {label} | " + " | ".join(f"{row[n]:.1%}" for n in names) + " |")
    lines += ["", "| emulator vs simulator posterior mean (in simulator sd) | median | 90th percentile | max |",
              "|---|---|---|---|"]
    for name, item in c["mean_difference_in_sim_sd"].items():
        lines.append(f"| {name} | {item['median']:.3f} | {item['p90']:.3f} | {item['max']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
