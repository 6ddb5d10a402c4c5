"""Session state of the Emulator tab: train a surrogate on an ensemble and check it live.

The ensemble comes from a small Plummer softening x virial-ratio sweep run here
(:meth:`EmulatorState.generate`) or from an uploaded npz written by ``nbody ensemble`` / the
Ensembles tab's download (:meth:`EmulatorState.load_upload`, capped like every upload). Training
(:meth:`EmulatorState.compute_training`, no parameter changes: safe in a worker thread; then
:meth:`EmulatorState.accept_training` under the document lock) fits the deep ensemble, the GP
baseline and, for a learning curve, the same network on a quarter and a half of the training
members. :meth:`band` gives the prediction ± 2 sd along one input with the others held at
their mid-range values; :meth:`check_here` runs fresh simulations at one point. Refusals set
``error`` (bumping ``error_count``) and keep the previous result. No Panel import.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import param

from nbody_explorer.limits import LIMITS, check_cost, check_limit, ensemble_cpu_seconds, safe_filename
from nbody_core.emulator import (
    MIN_MEMBERS,
    TrainConfig,
    emulator_npz_bytes,
    evaluate,
    train_emulator,
    training_data_from_arrays,
)
from nbody_core.emulator.inference import GridPosterior, emulator_posterior, simulate_at
from nbody_core.emulator.metrics import measure_accuracy
from nbody_core.ensembles import EnsembleSpec, run_converged

__all__ = ["EmulatorState", "GENERATE_SWEEPS"]
#: The sweep the tab runs itself.
GENERATE_SWEEPS = ("softening=0.01:0.3:log", "virial_ratio=0.3:0.7")
# Steps per member of a converged run over the first pass's, on GENERATE_SWEEPS' box (measured,
# Plummer N = 64, 256 members: 37 % rerun at 4x the steps, 9 % again at 16x: 1 + 1.5 + 1.4).
_RERUN_COST = 4
# Arrays of an ensemble file the emulator reads (trajectories are skipped when present).
_NEEDED = ("parameters", "parameter_names", "summaries", "summary_names", "parameter_units", "parameter_swept",
           "summary_units")


def _mid(low: float, high: float, log: bool) -> float:
    return float(np.sqrt(low * high)) if log else 0.5 * (low + high)


class EmulatorState(param.Parameterized):
    """One session's emulator: its data, training settings, the trained model and checks."""

    gen_bodies = param.Integer(32, bounds=(4, 128), doc="Bodies per member of the generated ensemble.")
    gen_members = param.Integer(256, bounds=(24, 2048), doc="Members of the generated ensemble.")
    gen_steps = param.Integer(100, bounds=(10, 2000), doc="Leapfrog steps (dt 0.02) per member; members over "
                              "the energy-error target 1e-3 are rerun at 4x and 16x smaller steps.")
    gen_seed = param.Integer(0, bounds=(0, 2**31 - 1), doc="Seed of the generated ensemble.")
    num_networks = param.Integer(5, bounds=(1, 16), doc="Networks in the deep ensemble.")
    width = param.Integer(64, bounds=(4, 256), doc="Hidden units per layer.")
    max_steps = param.Integer(2000, bounds=(50, 20000), doc="Training steps at most (early stopping may end sooner).")
    seed = param.Integer(0, bounds=(0, 2**31 - 1), doc="Initialisation and split seed.")
    learning_curve = param.Boolean(True, doc="Also train on 1/4 and 1/2 of the training members.")
    output = param.Selector(default=None, objects=[], doc="Output shown in the plots.")
    axis = param.Selector(default=None, objects=[], doc="Input along the band plot's x axis.")
    check_value = param.Number(0.1, doc="Value of the band's input where 'run the simulator here' checks.")
    observed_value = param.Number(1.0, doc="An observed value of the plotted output, for the posterior.")

    # Data and results (set by the methods below, read by the view).
    arrays = param.Dict(default=None, doc="Arrays of the loaded ensemble.")
    metadata = param.Dict(default=None, doc="Metadata of the loaded ensemble.")
    data = param.Parameter(default=None, doc="TrainingData of the loaded ensemble.")
    dataset_name = param.String("", doc="Where the ensemble came from (escaped by the view).")
    data_count = param.Integer(0, doc="Bumped whenever a new ensemble is loaded.")
    emulator = param.Parameter(default=None, doc="The trained Emulator.")
    report = param.Parameter(default=None, doc="Its TrainingReport.")
    curve = param.List(default=[], doc="Learning curve rows: {members, rmse: {output: value}}.")
    train_count = param.Integer(0, doc="Bumped on every accepted training.")
    last_check = param.Dict(default=None, doc="The last 'run the simulator here' check.")
    check_count = param.Integer(0)
    accuracy = param.Dict(default=None, doc="The last accuracy measurement (nbody_core.emulator.metrics).")
    accuracy_count = param.Integer(0)
    posterior = param.Parameter(default=None, doc="GridPosterior of the axis input from the observed value.")
    posterior_count = param.Integer(0)
    running = param.Boolean(False)
    error = param.String("", doc="Why the last action was refused.")
    error_count = param.Integer(0)

    @param.depends("axis", watch=True)
    def _on_axis(self) -> None:
        if self.data is not None and self.axis in self.data.input_names:
            self.check_value = self.fixed_values()[self.axis]

    def refuse(self, reason: str) -> None:
        self.error = reason
        self.error_count += 1

    # ------------------------------------------------------------------ data
    def generate_spec(self) -> EnsembleSpec:
        """The sweep run here, within the server's ensemble caps (``ValueError`` otherwise)."""
        check_limit("max_ensemble_members", self.gen_members)
        check_limit("max_ensemble_bodies", self.gen_bodies)
        check_cost(
            ensemble_cpu_seconds(num_bodies=self.gen_bodies,
                                 member_steps=[self.gen_steps * _RERUN_COST] * self.gen_members),
            what="This ensemble", reduce="the members or steps, or the bodies (the cost grows with their square)",
        )
        return EnsembleSpec(system="plummer", num_bodies=self.gen_bodies, num_members=self.gen_members,
                            num_steps=self.gen_steps, dt=0.02, sweeps=GENERATE_SWEEPS, design="random",
                            seed=self.gen_seed)

    def compute_generate(self, progress: Callable[[int, int], None] | None = None,
                         should_stop: Callable[[], bool] | None = None):
        """Run the generated ensemble (worker-thread safe): ``(arrays, metadata, name)``; members
        over the energy-error target are rerun at smaller steps (``run_converged``)."""
        spec = self.generate_spec()
        result = run_converged(spec, progress=progress, should_stop=should_stop)
        metadata = json.loads(json.dumps(result.metadata(), default=str))
        return result.arrays(), metadata, f"generated: Plummer N={spec.num_bodies}, {spec.num_members} members"

    def accept_data(self, arrays: dict, metadata: dict, name: str) -> bool:
        """Use ``arrays`` / ``metadata`` as the training ensemble (refused with a reason)."""
        try:
            data = training_data_from_arrays(arrays, metadata, source=repr(name))
        except ValueError as error:
            self.refuse(str(error))
            return False
        self.arrays, self.metadata, self.data, self.dataset_name = arrays, metadata, data, name
        self.emulator, self.report, self.curve, self.last_check = None, None, [], None
        self.param.output.objects = list(data.output_names)
        self.output = data.output_names[min(2, len(data.output_names) - 1)]
        self.param.axis.objects = list(data.input_names)
        self.axis = data.input_names[-1]
        self.error = ""
        self.data_count += 1
        return True

    def load_upload(self, content: bytes | None, filename: str | None) -> bool:
        """Read an uploaded ensemble npz (no pickle; at most ``LIMITS.max_upload_bytes``: a
        1024-member ensemble without trajectories is ~0.35 MB)."""
        name = safe_filename(filename or "upload.npz")
        if not content:
            self.refuse("the uploaded file is empty")
            return False
        if len(content) > LIMITS.max_upload_bytes:
            self.refuse(f"the file is {len(content):,} bytes; the limit is {LIMITS.max_upload_bytes:,}")
            return False
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as raw:
                if not isinstance(raw, np.lib.npyio.NpzFile):
                    raise ValueError
                arrays = {key: raw[key] for key in _NEEDED if key in raw.files}
                metadata = json.loads(str(raw["metadata"])) if "metadata" in raw.files else {}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, KeyError):
            self.refuse(f"{name!r} is not a readable npz file")
            return False
        if not isinstance(metadata, dict):
            metadata = {}
        return self.accept_data(arrays, metadata, name)

    # ------------------------------------------------------------------ training
    def config(self) -> TrainConfig:
        return TrainConfig(num_networks=self.num_networks, width=self.width, max_steps=self.max_steps,
                           seed=self.seed, eval_every=min(50, self.max_steps), patience=max(200, self.max_steps // 5))

    def compute_training(self, progress: Callable[[float, str], None] | None = None,
                         should_stop: Callable[[], bool] | None = None):
        """Train (worker-thread safe, changes no parameter): ``(emulator, report, curve)``.

        ``progress(fraction, text)`` is called as training proceeds.
        """
        data, config = self.data, self.config()
        if data is None:
            raise ValueError("load or generate an ensemble first")
        # A learning-curve point needs MIN_MEMBERS members outside the full model's test split.
        outside_test = data.num_members - max(2, int(np.floor(config.test * data.num_members + 0.5)))
        phases = [1.0] + [f for f in (0.25, 0.5) if self.learning_curve and int(f * outside_test) >= MIN_MEMBERS]
        if self.learning_curve and len(phases) == 1 and outside_test > MIN_MEMBERS:
            phases.append(MIN_MEMBERS / outside_test)
        share = 1.0 / len(phases)

        def reporter(phase, label):
            def report(step, total, train_loss, val_loss):
                if progress is not None:
                    progress(min(1.0, (phase + step / total) * share), f"{label}: step {step}, validation NLL {val_loss:+.3f}")
            return report

        emulator, report = train_emulator(data, config, progress=reporter(0, "training"), should_stop=should_stop,
                                          source=self.dataset_name)
        test = report.split.test
        curve = [{"members": len(report.split.train), "rmse": {n: v["rmse"] for n, v in report.metrics["mlp"].items()}}]
        for k, fraction in enumerate(phases[1:], start=1):
            # Fewer members, none of the full model's test members (its own split is drawn
            # inside them), scored on that same test split: the curve compares like with like.
            rest = np.setdiff1d(np.arange(data.num_members), test)
            keep = rest[: max(MIN_MEMBERS, int(round(fraction * len(rest))))]
            subset = replace(data, inputs=data.inputs[keep], outputs=data.outputs[keep], members=data.members[keep])
            small, small_report = train_emulator(subset, replace(config, gp_baseline=False),
                                                 progress=reporter(k, f"learning curve ({fraction:.0%})"),
                                                 should_stop=should_stop)
            metrics = evaluate(small.predict, data.inputs[test], data.outputs[test], data.output_names)
            curve.append({"members": len(small_report.split.train), "rmse": {n: v["rmse"] for n, v in metrics.items()}})
        curve.sort(key=lambda row: row["members"])
        return emulator, report, curve

    def accept_training(self, emulator, report, curve) -> None:
        self.emulator, self.report, self.curve, self.last_check = emulator, report, curve, None
        self.posterior, self.accuracy = None, None
        self.observed_value = float(np.median(self.data.outputs[:, self.data.output_names.index(self.output)]))
        self.error = ""
        self.train_count += 1

    # ------------------------------------------------------------------ reading the model
    def test_points(self, output: str | None = None) -> dict[str, np.ndarray]:
        """Simulated, predicted and sd on the test split for ``output``."""
        data, report = self.data, self.report
        k = data.output_names.index(output or self.output)
        x, y = data.inputs[report.split.test], data.outputs[report.split.test]
        mean, sd = self.emulator.predict(x)
        return {"simulated": y[:, k], "predicted": mean[:, k], "sd": sd[:, k]}

    def fixed_values(self) -> dict[str, float]:
        """Mid-range value of every input (the band holds all but its axis there)."""
        data = self.data
        return {n: _mid(lo, hi, lg) for n, lo, hi, lg in zip(data.input_names, data.input_low, data.input_high,
                                                            data.input_log)}

    def band(self, num: int = 120) -> dict[str, np.ndarray]:
        """Prediction ± 2 sd along :attr:`axis` (others at mid-range) and the simulated
        members whose other inputs lie within 15 % of their range of those values."""
        data, emulator = self.data, self.emulator
        j = data.input_names.index(self.axis)
        k = data.output_names.index(self.output)
        low, high, log = data.input_low[j], data.input_high[j], data.input_log[j]
        grid = np.geomspace(low, high, num) if log else np.linspace(low, high, num)
        fixed = self.fixed_values()
        points = np.array([[fixed[n] for n in data.input_names]] * num)
        points[:, j] = grid
        mean, sd = emulator.predict(points)
        near = np.ones(data.num_members, bool)
        for i, name in enumerate(data.input_names):
            if i == j:
                continue
            lo, hi, lg = data.input_low[i], data.input_high[i], data.input_log[i]
            scale = (np.log10 if lg else (lambda v: v))
            near &= np.abs(scale(data.inputs[:, i]) - scale(fixed[name])) <= 0.15 * (scale(hi) - scale(lo))
        return {"x": grid, "mean": mean[:, k], "sd": sd[:, k], "sim_x": data.inputs[near, j],
                "sim_y": data.outputs[near, k], "log_x": log}

    # ------------------------------------------------------------------ checking one point
    def check_point(self) -> dict[str, float]:
        """The full input point of a check: :attr:`check_value` on the axis, others mid-range.

        Raises:
            ValueError: the value is outside the trained range or not finite.
        """
        data = self.data
        j = data.input_names.index(self.axis)
        value = float(self.check_value)
        if not np.isfinite(value) or not data.input_low[j] <= value <= data.input_high[j]:
            raise ValueError(f"{self.axis} = {value!r} is outside the trained range "
                             f"[{data.input_low[j]:.4g}, {data.input_high[j]:.4g}]")
        return {**self.fixed_values(), self.axis: value}

    def compute_check(self, point: dict[str, float], *, replicas: int = 8) -> dict[str, Any]:
        """Run ``replicas`` fresh members at ``point`` (worker-thread safe)."""
        simulated = simulate_at(self.emulator, point, num_members=replicas, seed=int(self.gen_seed) + 1_000_003)
        mean, sd = self.emulator.predict([point[n] for n in self.emulator.input_names])
        k = self.emulator.output_names.index(self.output)
        inside = np.abs(simulated[:, k] - mean[k]) <= 2 * sd[k]
        return {"point": point, "output": self.output, "simulated": simulated[:, k].tolist(),
                "predicted": float(mean[k]), "sd": float(sd[k]), "inside": int(inside.sum()),
                "replicas": replicas}

    def accept_check(self, check: dict[str, Any]) -> None:
        self.last_check = check
        self.check_count += 1

    # ------------------------------------------------------------------ accuracy
    #: Replica grid of "Measure accuracy": points per input and simulations per point.
    ACCURACY_GRID, ACCURACY_REPLICAS = 2, 8

    def compute_accuracy(self, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Debiased error of the mean over the scatter for the emulator and the baselines, from
        replicas on a grid over the box (worker-thread safe; within the ensemble caps)."""
        data = self.data
        points = self.ACCURACY_GRID ** len(data.input_names)
        members = points * self.ACCURACY_REPLICAS
        check_limit("max_ensemble_members", members)
        bodies = int(self.emulator.header["ensemble"]["spec"].get("num_bodies") or 2)
        steps = int(self.emulator.header["ensemble"]["spec"]["num_steps"])
        check_cost(ensemble_cpu_seconds(num_bodies=bodies, member_steps=[steps * _RERUN_COST] * members),
                   what="This accuracy check", reduce="the ensemble's bodies or steps")
        return measure_accuracy(self.emulator, data, grid=self.ACCURACY_GRID, replicas=self.ACCURACY_REPLICAS,
                                seed=int(self.gen_seed) + 2_000_003, should_stop=should_stop)

    def accept_accuracy(self, accuracy: dict[str, Any]) -> None:
        self.accuracy = accuracy
        self.accuracy_count += 1

    # ------------------------------------------------------------------ inference
    def compute_posterior(self) -> GridPosterior:
        """Posterior of :attr:`axis` (others at mid-range) from one observed value of
        :attr:`output`, the emulator as forward model (worker-thread safe)."""
        if not np.isfinite(float(self.observed_value)):
            raise ValueError("the observed value must be finite")
        fixed = {n: v for n, v in self.fixed_values().items() if n != self.axis}
        return emulator_posterior(self.emulator, {self.output: float(self.observed_value)}, fixed=fixed,
                                  grid_points=201)

    def accept_posterior(self, posterior: GridPosterior) -> None:
        self.posterior = posterior
        self.posterior_count += 1

    def download_name(self) -> str:
        return safe_filename(f"emulator_{self.dataset_name.split(':')[0]}", suffix=".npz")

    def download_bytes(self) -> bytes:
        return emulator_npz_bytes(self.emulator)
