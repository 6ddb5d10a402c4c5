"""``nbody emulate``: train an emulator on an ensemble file, predict with it, infer with it.

``nbody emulate train ENSEMBLE.npz --out model.npz`` learns the ensemble's swept parameters ->
summaries (a deep ensemble of small MLPs, with an exact-GP baseline) and prints test RMSE and
±2 sd coverage per output; ``nbody emulate predict model.npz --param softening=0.05 --param
virial_ratio=0.5`` prints mean ± sd per output; ``nbody emulate infer model.npz --observed
lagrangian_radius_50=1.1 ...`` prints the grid posterior over the inputs (add ``--check`` to
build the same posterior with the simulator and compare); ``nbody emulate check model.npz
data.npz`` runs replicas on a grid over the box and prints the debiased error of the mean over
the scatter for the emulator and the baselines (training mean, linear, quadratic).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from nbody_core.cli import check_output_path, one_line_errors, seed


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "emulate",
        help="train a fast surrogate of the simulator on an ensemble file, predict and infer with it",
        description="Emulators: learn summaries of an ensemble as functions of its swept parameters.",
    )
    one_line_errors(parser, "emulate")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    train = actions.add_parser("train", help="train on ENSEMBLE.npz and write the model (.npz)",
                               epilog="example: nbody emulate train data.npz --out model.npz")
    one_line_errors(train, "emulate train")
    train.add_argument("ensemble", help="npz written by 'nbody ensemble' with at least one numeric --sweep")
    train.add_argument("--out", required=True, help="model file to write (.npz)")
    train.add_argument("--outputs", help="comma-separated summaries to learn (default: final virial ratio "
                       "and the 10/50/90 %% Lagrangian radii where they vary)")
    train.add_argument("--energy-tolerance", type=float, default=1e-3, metavar="TOL",
                       help="drop members whose max |dE/E| exceeds TOL (default 1e-3; 0 keeps every member)")
    train.add_argument("--networks", type=int, default=5, help="networks in the deep ensemble (default 5)")
    train.add_argument("--width", type=int, default=64, help="hidden units per layer (default 64)")
    train.add_argument("--depth", type=int, default=2, help="hidden layers (default 2)")
    train.add_argument("--max-steps", type=int, default=3000, help="training steps at most (default 3000)")
    train.add_argument("--patience", type=int, default=400, help="early-stopping patience in steps (default 400)")
    train.add_argument("--seed", type=seed, default=0, help="initialisation and split seed (default 0)")
    train.add_argument("--no-gp", action="store_true", help="skip the Gaussian-process baseline")
    train.add_argument("--quiet", action="store_true", help="no progress line")
    train.set_defaults(handler=_train)

    predict = actions.add_parser("predict", help="predict the outputs at given parameters",
                                 epilog="example: nbody emulate predict model.npz --param softening=0.05 "
                                 "--param virial_ratio=0.5")
    one_line_errors(predict, "emulate predict")
    predict.add_argument("model", help="model file written by 'nbody emulate train'")
    predict.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                         help="one per input of the model (repeat)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.add_argument("--outside", choices=("warn", "raise", "ignore"), default="warn",
                         help="a point outside the box the emulator was trained on: warn (default), refuse "
                              "(raise) or say nothing (ignore)")
    predict.set_defaults(handler=_predict)

    check = actions.add_parser("check", help="error of the mean against the simulator's scatter, beside baselines",
                               epilog="example: nbody emulate check model.npz data.npz --grid 3 --replicas 16")
    one_line_errors(check, "emulate check")
    check.add_argument("model", help="model file written by 'nbody emulate train'")
    check.add_argument("ensemble", help="the ensemble file it was trained on (baselines use its training split)")
    check.add_argument("--grid", type=int, default=3, help="points per input, cell centres of the box (default 3)")
    check.add_argument("--replicas", type=int, default=16, help="simulations per point (default 16)")
    check.add_argument("--energy-tolerance", type=float, default=1e-3, metavar="TOL",
                       help="the tolerance the model was trained with (default 1e-3; 0: none)")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")
    check.set_defaults(handler=_check)

    infer = actions.add_parser("infer", help="posterior over the model's inputs from observed outputs",
                               epilog="example: nbody emulate infer model.npz --observed lagrangian_radius_50=1.1 "
                               "--observed lagrangian_radius_90=2.4 --fix softening=0.05")
    one_line_errors(infer, "emulate infer")
    infer.add_argument("model", help="model file written by 'nbody emulate train'")
    infer.add_argument("--observed", action="append", default=[], metavar="OUTPUT=VALUE",
                       help="an observed summary (repeat)")
    infer.add_argument("--fix", action="append", default=[], metavar="INPUT=VALUE",
                       help="hold an input fixed instead of inferring it (repeat)")
    infer.add_argument("--grid", type=int, default=101, help="grid points per inferred input (default 101)")
    infer.add_argument("--check", action="store_true",
                       help="also build the posterior with the simulator (synthetic likelihood) and compare")
    infer.add_argument("--check-grid", type=int, default=11, help="grid points per input for --check (default 11)")
    infer.add_argument("--replicas", type=int, default=32, help="simulations per grid point for --check (default 32)")
    infer.add_argument("--json", action="store_true", help="print JSON instead of a table")
    infer.set_defaults(handler=_infer)


def _pairs(items: list[str], option: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{option} {item!r} must look like NAME=VALUE")
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"{option} {item!r}: {value.strip()!r} is not a number") from None
        if out[name] != out[name] or out[name] in (float("inf"), float("-inf")):
            raise ValueError(f"{option} {item!r}: the value must be finite")
    if len(out) != len(items):
        raise ValueError(f"{option} names a parameter twice")
    return out


def _model_path(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise OSError(f"cannot read {text!r}: no such file")
    return path


def _train(args) -> int:
    from nbody_core.emulator import TrainConfig, load_training_data, save_emulator, train_emulator

    out = check_output_path(args.out)
    config = TrainConfig(num_networks=args.networks, width=args.width, depth=args.depth, max_steps=args.max_steps,
                         patience=args.patience, seed=args.seed, gp_baseline=not args.no_gp)
    outputs = None if args.outputs is None else [s.strip() for s in args.outputs.split(",") if s.strip()]
    tolerance = args.energy_tolerance if args.energy_tolerance > 0 else None
    data = load_training_data(args.ensemble, outputs=outputs, energy_tolerance=tolerance)

    def progress(step, total, train_loss, val_loss):
        if not args.quiet:
            print(f"\rstep {step}/{total}  train NLL {train_loss:+.3f}  validation NLL {val_loss:+.3f}",
                  end="", file=sys.stderr, flush=True)

    emulator, report = train_emulator(data, config, progress=progress, source=Path(args.ensemble).name)
    if not args.quiet:
        print(file=sys.stderr)
    save_emulator(emulator, out)
    sizes = emulator.header["training"]["split_sizes"]
    print(f"wrote {out}: inputs {list(data.input_names)}, {data.num_members} members "
          f"(train {sizes['train']}, validation {sizes['validation']}, test {sizes['test']}"
          + (f", {data.dropped_nonfinite} non-finite dropped" if data.dropped_nonfinite else "")
          + (f", {data.dropped_unconverged} dropped over the energy-error target {data.energy_tolerance:g}"
             if data.dropped_unconverged else "")
          + f"), {report.steps_run} steps, {report.seconds['train']:.1f} s")
    header = f"{'output':<24}{'MLP RMSE':>12}{'in ±2sd':>9}"
    if "gp" in report.metrics:
        header += f"{'GP RMSE':>12}{'in ±2sd':>9}"
    print(header)
    for name in data.output_names:
        mlp = report.metrics["mlp"][name]
        line = f"{name:<24}{mlp['rmse']:>12.4g}{mlp['coverage_2sigma']:>9.0%}"
        if "gp" in report.metrics:
            gp = report.metrics["gp"][name]
            line += f"{gp['rmse']:>12.4g}{gp['coverage_2sigma']:>9.0%}"
        print(line)
    print(f"(RMSE against single runs includes the simulator's own scatter; 'nbody emulate check {out} "
          f"{args.ensemble}' measures the error of the mean beside baselines)")
    return 0


def _check(args) -> int:
    from nbody_core.emulator import load_emulator, load_training_data
    from nbody_core.emulator.metrics import measure_accuracy

    emulator = load_emulator(_model_path(args.model))
    tolerance = args.energy_tolerance if args.energy_tolerance > 0 else None
    data = load_training_data(args.ensemble, outputs=list(emulator.output_names), energy_tolerance=tolerance)
    report = measure_accuracy(emulator, data, grid=args.grid, replicas=args.replicas)
    if args.json:
        print(json.dumps({**report, "points": report["points"].tolist()}, indent=1))
        return 0
    names = emulator.output_names
    print(f"error of the mean / scatter (debiased; 0 = as good as infinitely many runs) at {len(report['points'])} "
          f"points x {report['replicas']} replicas; 95 % bootstrap interval over points")
    print(f"{'model':<16}" + "".join(f"{name:>26}" for name in names))
    for label, metrics in report["models"].items():
        cells = [f"{m['ratio']:.3f} ({m['low']:.3f}-{m['high']:.3f})" for m in (metrics[n] for n in names)]
        print(f"{label:<16}" + "".join(f"{cell:>26}" for cell in cells))
    return 0


def _predict(args) -> int:
    from nbody_core.emulator import ExtrapolationWarning, load_emulator

    emulator = load_emulator(_model_path(args.model))
    values = _pairs(args.param, "--param")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtrapolationWarning)
        predictions = emulator.predict_named(values, outside=args.outside)
    for warning in caught:
        if issubclass(warning.category, ExtrapolationWarning):
            print(f"nbody emulate predict: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if args.json:
        print(json.dumps({name: {"mean": m, "sd": s} for name, (m, s) in predictions.items()}, indent=1))
        return 0
    units = {o["name"]: o["unit"] for o in emulator.header["outputs"]}
    for name, (mean, sd) in predictions.items():
        print(f"{name:<24}{mean:>12.5g} ± {sd:<10.3g} ({units[name]})")
    return 0


def _infer(args) -> int:
    return infer_with_emulator(args.model, args.observed, args.fix, grid=args.grid, check=args.check,
                               check_grid=args.check_grid, replicas=args.replicas, as_json=args.json)


def infer_with_emulator(model: str, observed_items: list[str], fix_items: list[str], *, grid: int = 101,
                        check: bool = False, check_grid: int = 11, replicas: int = 32, as_json: bool = False,
                        out: str | None = None) -> int:
    """Print (and with ``out`` write as npz) the emulator's grid posterior; shared by
    ``nbody emulate infer`` and ``nbody infer --emulator``."""
    from nbody_core.emulator import load_emulator
    from nbody_core.emulator.inference import compare_posteriors, emulator_posterior, simulator_posterior
    from nbody_core.io import save_npz

    if out is not None:
        out_path = check_output_path(out)
    emulator = load_emulator(_model_path(model))
    observed = _pairs(observed_items, "--observed")
    fixed = _pairs(fix_items, "--fix")
    posterior = emulator_posterior(emulator, observed, fixed=fixed, grid_points=grid)
    result = {"emulator": {n: {"mean": float(posterior.mean[k]), "sd": float(posterior.sd[k]),
                               "interval_95": posterior.interval[k].tolist()} for k, n in enumerate(posterior.names)},
              "emulator_seconds": posterior.seconds}
    if check:
        simulated = simulator_posterior(emulator, observed, fixed=fixed, grid_points=check_grid, replicas=replicas)
        result["check"] = compare_posteriors(posterior, simulated)
    if out is not None:
        arrays = {f"grid_{n}": g for n, g in zip(posterior.names, posterior.grids)}
        arrays.update({f"marginal_{n}": m for n, m in zip(posterior.names, posterior.marginals)})
        arrays["log_posterior"] = posterior.log_posterior
        save_npz(out_path, arrays, {"format": "nbody-explorer emulator posterior v1", "model": str(model),
                                    "model_fingerprint": emulator.header["ensemble"]["fingerprint"],
                                    "observed": observed, "fixed": fixed, "names": list(posterior.names), **result})
    if as_json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"emulator posterior ({posterior.forward_evaluations} grid points, {posterior.seconds:.3f} s):")
    for name, item in result["emulator"].items():
        lo, hi = item["interval_95"]
        print(f"  {name:<16}{item['mean']:>12.5g} ± {item['sd']:<10.3g} 95% [{lo:.5g}, {hi:.5g}]")
    if check:
        comparison = result["check"]
        print(f"simulator posterior ({simulated.forward_evaluations} simulations, {simulated.seconds:.1f} s; "
              f"emulator {comparison['speedup']:.0f}x faster):")
        for name, item in comparison["inputs"].items():
            lo, hi = item["simulator_interval"]
            print(f"  {name:<16}{item['simulator_mean']:>12.5g} ± {item['simulator_sd']:<10.3g} 95% [{lo:.5g}, {hi:.5g}]"
                  f"  |diff| = {item['difference_in_sd']:.2f} sd, intervals overlap: {item['intervals_overlap']}")
    if out is not None:
        print(f"wrote {out_path}")
    return 0
