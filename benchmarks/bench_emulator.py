"""Emulator against the simulator: accuracy on held-out runs, learning curve, speed, inference.

On a Plummer softening x virial-ratio sweep (random design, N bodies, leapfrog):

* **learning curve**: the emulator (deep ensemble of MLPs) and the exact-GP baseline trained on
  the first 64 / 256 / 1024 members of one ensemble; per summary, RMSE and the fraction inside
  ±2 sd on the model's own test split and on a *fresh* ensemble (another seed: parameters and
  initial conditions never seen).
* **noise floor**: replicas at fixed parameters (a 3 x 3 grid, ``--replicas`` each) give the
  member-to-member scatter of every summary. A prediction of the mean cannot beat that
  scatter against single runs (RMSE^2 = scatter^2 + error-of-the-mean^2), so the table gives
  both the RMSE / scatter ratio (1 is perfect) and the emulator's error *of the mean* at the
  replica points against the scatter (the goal: below it).
* **speed**: the simulator (vmapped ``run_ensemble``, compile excluded) and the emulator
  (batched ``predict``, compile excluded) on the same fresh parameters, side by side.
* **inference**: observed 10/50/90 % Lagrangian radii of one fresh run at a known virial ratio;
  posterior over the virial ratio (softening fixed) with the emulator as forward model against
  the simulator's synthetic-likelihood posterior; means, sds, interval overlap, speed-up.

    python benchmarks/bench_emulator.py                   # members 64 256 1024, N = 64
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
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
SWEEPS = ("softening=0.01:0.3:log", "virial_ratio=0.3:0.7")


def _ensemble(args, members, seed, sweeps=SWEEPS, **fixed):
    from nbody_core.ensembles import EnsembleSpec, run_ensemble

    spec = EnsembleSpec(system="plummer", num_bodies=args.n, num_members=members, num_steps=args.steps, dt=args.dt,
                        sweeps=sweeps, design="random" if sweeps == SWEEPS else "grid", seed=seed, **fixed)
    started = time.perf_counter()
    result = run_ensemble(spec)
    return result, time.perf_counter() - started


def _data(result, outputs=None):
    from nbody_core.emulator import training_data_from_arrays

    metadata = json.loads(json.dumps(result.metadata(), default=str))
    return training_data_from_arrays(result.arrays(), metadata, outputs=outputs)


def _subset(data, count):
    keep = np.arange(count)
    return replace(data, inputs=data.inputs[keep], outputs=data.outputs[keep], members=data.members[keep])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--n", type=int, default=64, help="bodies per member (default 64)")
    parser.add_argument("--steps", type=int, default=200, help="leapfrog steps (default 200)")
    parser.add_argument("--dt", type=float, default=0.02, help="step (default 0.02: t_end = 4)")
    parser.add_argument("--fresh", type=int, default=256, help="members of the fresh check ensemble")
    parser.add_argument("--replicas", type=int, default=32, help="replicas per fixed-parameter point")
    parser.add_argument("--networks", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--check-grid", type=int, default=11, help="grid of the simulator posterior")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.n, args.steps, args.fresh, args.replicas = [32, 48], 8, 20, 24, 4
        args.networks, args.max_steps, args.check_grid = 2, 200, 5
    import jax

    import nbody_core

    nbody_core.enable_float64()  # float64 runs need JAX's 64-bit mode
    from nbody_core.emulator import TrainConfig, evaluate, train_emulator
    from nbody_core.emulator.inference import compare_posteriors, emulator_posterior, simulator_posterior

    load_before = os.getloadavg()
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    train_result, train_seconds = _ensemble(args, max(args.members), seed=0)
    data = _data(train_result)
    log(f"training ensemble: {max(args.members)} members in {train_seconds:.1f} s")
    fresh_result, _ = _ensemble(args, args.fresh, seed=1)
    fresh = _data(fresh_result, data.output_names)
    log(f"fresh ensemble: {args.fresh} members, run {fresh_result.timing['run_s']:.2f} s")
    grid_s, grid_q = (0.02, 0.06, 0.18), (0.35, 0.5, 0.65)
    replica_sweeps = (f"softening={','.join(map(str, grid_s))}", f"virial_ratio={','.join(map(str, grid_q))}")
    replica_result, _ = _ensemble(args, 9 * args.replicas, seed=2, sweeps=replica_sweeps)
    replicas = _data(replica_result, data.output_names)
    # Grid design: member i runs point i mod 9.
    rep_out = replicas.outputs.reshape(args.replicas, 9, -1)
    rep_in = replicas.inputs.reshape(args.replicas, 9, -1)[0]
    scatter = rep_out.std(axis=0, ddof=1)  # [9, S]
    replica_mean = rep_out.mean(axis=0)
    names = data.output_names

    config = TrainConfig(num_networks=args.networks, max_steps=args.max_steps)
    curve, largest = [], None
    for count in args.members:
        started = time.perf_counter()
        emulator, report = train_emulator(_subset(data, count), config)
        row = {"members": count, "train_s": report.seconds["train"], "gp_s": report.seconds.get("gp"),
               "steps_run": report.steps_run, "test": report.metrics,
               "fresh": {"mlp": evaluate(emulator.predict, fresh.inputs, fresh.outputs, names)}}
        curve.append(row)
        largest = emulator
        log(f"members {count}: trained in {time.perf_counter() - started:.1f} s")

    mean_at, _ = largest.predict(rep_in)
    noise = {}
    for k, name in enumerate(names):
        floor = float(np.sqrt(np.mean(scatter[:, k] ** 2)))
        error_of_mean = float(np.sqrt(np.mean((mean_at[:, k] - replica_mean[:, k]) ** 2)))
        standard_error = float(np.sqrt(np.mean(scatter[:, k] ** 2 / args.replicas)))
        noise[name] = {"scatter": floor, "error_of_mean": error_of_mean, "replica_mean_standard_error": standard_error,
                       "test_rmse": curve[-1]["test"]["mlp"][name]["rmse"],
                       "fresh_rmse": curve[-1]["fresh"]["mlp"][name]["rmse"],
                       "fresh_coverage": curve[-1]["fresh"]["mlp"][name]["coverage_2sigma"]}

    # Speed: the same fresh parameters through both, compile excluded on both sides.
    largest.predict(fresh.inputs)
    repeats, started = 20, time.perf_counter()
    for _ in range(repeats):
        largest.predict(fresh.inputs)
    emulator_rate = repeats * fresh.num_members / (time.perf_counter() - started)
    big = np.repeat(fresh.inputs, 40, axis=0)
    largest.predict(big)
    started = time.perf_counter()
    largest.predict(big)
    emulator_rate_big = big.shape[0] / (time.perf_counter() - started)
    simulator_rate = fresh_result.spec.num_members / fresh_result.timing["run_s"]
    speed = {"points": fresh.num_members, "simulator_runs_per_s": simulator_rate,
             "simulator_compile_s": fresh_result.timing["compile_s"],
             "emulator_predictions_per_s": emulator_rate, "emulator_predictions_per_s_batch": emulator_rate_big,
             "batch": int(big.shape[0]), "speedup": emulator_rate / simulator_rate,
             "speedup_batch": emulator_rate_big / simulator_rate}
    log(f"speed: simulator {simulator_rate:.1f} runs/s, emulator {emulator_rate:.3g} / {emulator_rate_big:.3g} per s")

    # Inference: one fresh run at a known truth, virial ratio inferred, softening fixed.
    truth = {"softening": 0.05, "virial_ratio": 0.45}
    observed_result, _ = _ensemble(args, 1, seed=7, sweeps=(), **truth)
    observed = {n: float(observed_result.summaries[n][0]) for n in
                ("lagrangian_radius_10", "lagrangian_radius_50", "lagrangian_radius_90") if n in names}
    fixed = {"softening": truth["softening"]}
    emulator_posterior(largest, observed, fixed=fixed, grid_points=101)  # compile
    emulated = emulator_posterior(largest, observed, fixed=fixed, grid_points=101)
    simulated = simulator_posterior(largest, observed, fixed=fixed, grid_points=args.check_grid,
                                    replicas=args.replicas, seed=3)
    inference = compare_posteriors(emulated, simulated)
    inference.update(truth=truth, observed=observed, simulations=simulated.forward_evaluations,
                     emulator_grid=101, simulator_grid=args.check_grid, replicas=args.replicas)
    both = emulator_posterior(largest, observed, grid_points=101)
    inference["emulator_2d"] = {n: {"mean": float(both.mean[k]), "sd": float(both.sd[k]),
                                    "interval_95": both.interval[k].tolist()} for k, n in enumerate(both.names)}
    log(f"inference: speed-up {inference['speedup']:.0f}x")

    payload = {
        "benchmark": "emulator",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cores": os.cpu_count() or 1, "platform": platform.platform()},
        "versions": {"python": platform.python_version(), "jax": jax.__version__},
        "setup": {"system": "plummer", "num_bodies": args.n, "num_steps": args.steps, "dt": args.dt,
                  "sweeps": list(SWEEPS), "design": "random", "networks": args.networks,
                  "training_ensemble_seconds": train_seconds},
        "outputs": list(names),
        "learning_curve": curve,
        "noise_floor": noise,
        "speed": speed,
        "inference": inference,
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
    largest = p["learning_curve"][-1]
    lines = [
        "# Emulator against the simulator",
        "",
        f"{p['date_utc']}, {p['machine']['cores']} cores, jax {p['versions']['jax']}, load average "
        f"{p['load_average_before'][0]:.1f} before / {p['load_average_after'][0]:.1f} after"
        + (" (quick smoke run)" if p["quick"] else "") + ". "
        f"Plummer N = {s['num_bodies']}, {s['num_steps']} leapfrog steps of {s['dt']}, random design over "
        f"{' x '.join('`' + w + '`' for w in s['sweeps'])}; deep ensemble of {s['networks']} MLPs against an "
        "exact GP. Test = the model's own held-out 15 % of members; fresh = a new ensemble (other seed).",
        "",
        "**Learning curve** (RMSE per summary; in parentheses the fraction inside ±2 sd):",
        "",
        "| members | model | " + " | ".join(p["outputs"]) + " |",
        "|---|---|" + "---|" * len(p["outputs"]),
    ]
    for row in p["learning_curve"]:
        for label, metrics in (("MLP test", row["test"]["mlp"]), ("GP test", row["test"].get("gp")),
                               ("MLP fresh", row["fresh"]["mlp"])):
            if metrics is None:
                continue
            cells = [f"{metrics[n]['rmse']:.4g} ({metrics[n]['coverage_2sigma']:.0%})" for n in p["outputs"]]
            lines.append(f"| {row['members']} | {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"**Against the simulator's own noise** ({largest['members']} members; scatter = member-to-member sd at "
        "fixed parameters, RMS over a 3 x 3 grid of replicas). RMSE against single runs is at least the "
        "scatter; the emulator's error *of the mean* is the part it adds:",
        "",
        "| summary | scatter | fresh RMSE | RMSE / scatter | error of the mean | (replica mean's own s.e.) | fresh in ±2 sd |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n in p["noise_floor"].items():
        lines.append(f"| {name} | {n['scatter']:.4g} | {n['fresh_rmse']:.4g} | {n['fresh_rmse'] / n['scatter']:.2f} | "
                     f"{n['error_of_mean']:.4g} | {n['replica_mean_standard_error']:.3g} | {n['fresh_coverage']:.0%} |")
    sp = p["speed"]
    lines += [
        "",
        f"**Speed** on the same {sp['points']} fresh parameter points (compile excluded on both sides): simulator "
        f"{sp['simulator_runs_per_s']:.1f} runs/s (vmapped `run_ensemble`), emulator "
        f"{sp['emulator_predictions_per_s']:.3g} predictions/s (one batch of {sp['points']}; "
        f"{sp['emulator_predictions_per_s_batch']:.3g}/s in a batch of {sp['batch']}): "
        f"**{sp['speedup']:,.0f}x** ({sp['speedup_batch']:,.0f}x batched).",
        "",
    ]
    inf = p["inference"]
    lines += [
        f"**Inference**: virial ratio of a Plummer sphere (truth {inf['truth']['virial_ratio']}, softening fixed at "
        f"{inf['truth']['softening']}) from one run's observed Lagrangian radii. Emulator: {inf['emulator_grid']}-point "
        f"grid, {inf['emulator_seconds']:.3f} s; simulator (synthetic likelihood): {inf['simulator_grid']} points x "
        f"{inf['replicas']} replicas = {inf['simulations']} runs, {inf['simulator_seconds']:.1f} s "
        f"(**{inf['speedup']:,.0f}x**).",
        "",
        "| input | emulator mean ± sd | simulator mean ± sd | difference / sim. sd | 95 % intervals overlap |",
        "|---|---|---|---|---|",
    ]
    for name, item in inf["inputs"].items():
        lines.append(f"| {name} | {item['emulator_mean']:.4g} ± {item['emulator_sd']:.3g} | "
                     f"{item['simulator_mean']:.4g} ± {item['simulator_sd']:.3g} | {item['difference_in_sd']:.2f} | "
                     f"{'yes' if item['intervals_overlap'] else 'no'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
