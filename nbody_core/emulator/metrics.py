"""Honest accuracy of an emulator: its error of the mean against the simulator's own scatter.

Contract: :func:`error_of_mean` takes predicted means ``[P, S]`` at P evaluation points and
``R`` simulated replicas ``[R, P, S]`` at the *same* points, and returns per summary the
debiased error of the mean over the scatter, ``sqrt(mean_p[(m_p - ybar_p)^2 - s_p^2 / R] /
mean_p[s_p^2])``, with a bootstrap interval over points. :func:`fit_baseline` fits the
baselines a network has to beat (training mean, linear, quadratic least squares in the
emulator's normalised inputs) on the training split.

Why this metric (issue 27, item 3): RMSE against single runs is dominated by the scatter
(RMSE^2 = scatter^2 + error^2), so an RMSE / scatter of 1.1 hides an error of the mean of 46 %
of the scatter, and dividing by a scatter measured elsewhere can even give ratios below 1.
Here both come from the same replicas at the same points, and ``s^2 / R`` (the replica mean's
own noise) is subtracted, so 0 means the emulator is as good as infinitely many simulations.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["BASELINES", "error_of_mean", "fit_baseline", "measure_accuracy"]

#: Baselines fitted by :func:`fit_baseline`, in order of flexibility.
BASELINES = ("training mean", "linear", "quadratic")


def _features(x: np.ndarray, kind: str) -> np.ndarray:
    columns = [np.ones(x.shape[0])]
    if kind in ("linear", "quadratic"):
        columns += [x[:, k] for k in range(x.shape[1])]
    if kind == "quadratic":
        columns += [x[:, i] * x[:, j] for i in range(x.shape[1]) for j in range(i, x.shape[1])]
    return np.column_stack(columns)


def fit_baseline(kind: str, inputs, outputs, *, input_log: Sequence[bool]) -> Callable[[np.ndarray], np.ndarray]:
    """Least-squares baseline of ``outputs [n, S]`` on ``inputs [n, P]`` (log10 where
    ``input_log``); returns ``predict(raw [B, P]) -> mean [B, S]``.

    ``kind``: ``"training mean"`` (a constant), ``"linear"`` (1 + P coefficients) or
    ``"quadratic"`` (1 + P + P(P+1)/2: 6 for two inputs).
    """
    if kind not in BASELINES:
        raise ValueError(f"kind must be one of {BASELINES}, got {kind!r}")
    log = np.asarray(input_log, dtype=bool)

    def transform(raw):
        raw = np.atleast_2d(np.asarray(raw, dtype=float))
        return np.where(log, np.log10(np.where(log, raw, 1.0)), raw)

    x = transform(inputs)
    centre, scale = x.mean(axis=0), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    coefficients, *_ = np.linalg.lstsq(_features((x - centre) / scale, kind), np.asarray(outputs, float), rcond=None)

    def predict(raw):
        return _features((transform(raw) - centre) / scale, kind) @ coefficients

    return predict


def error_of_mean(predicted_mean, replicas, *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Debiased error of the mean over the scatter, per summary, with a 95 % bootstrap interval.

    Args:
        predicted_mean: ``[P, S]`` the model's mean at the P evaluation points.
        replicas: ``[R, P, S]`` simulated summaries, R >= 2 replicas at each point.
        bootstrap: resamples of the points (with replacement) for the interval.
        seed: the bootstrap's generator (``numpy.random.PCG64``).

    Returns:
        ``{"ratio": [S], "low": [S], "high": [S], "scatter": [S] (RMS over points),
        "points": P, "replicas": R}``; a ratio whose debiased square is negative (an error
        below the replica mean's own noise) is reported as 0.
    """
    mean = np.asarray(predicted_mean, dtype=float)
    replicas = np.asarray(replicas, dtype=float)
    count, points, _ = replicas.shape
    if count < 2 or mean.shape != replicas.shape[1:]:
        raise ValueError(f"need [R >= 2, P, S] replicas matching the [P, S] means, got {replicas.shape} / {mean.shape}")
    variance = replicas.var(axis=0, ddof=1)  # [P, S]
    excess = (mean - replicas.mean(axis=0)) ** 2 - variance / count  # unbiased for (m - mu)^2

    def ratio(rows):
        return np.sqrt(np.maximum(excess[rows].mean(axis=0), 0.0) / variance[rows].mean(axis=0))

    rng = np.random.Generator(np.random.PCG64(seed))
    samples = np.array([ratio(rng.integers(0, points, points)) for _ in range(bootstrap)])
    return {
        "ratio": ratio(np.arange(points)),
        "low": np.percentile(samples, 2.5, axis=0),
        "high": np.percentile(samples, 97.5, axis=0),
        "scatter": np.sqrt(variance.mean(axis=0)),
        "points": points,
        "replicas": count,
    }


def measure_accuracy(emulator, data, *, grid: int = 3, replicas: int = 16, seed: int = 101,
                     bootstrap: int = 1000, **run_options) -> dict:
    """Run the simulator at a grid over the box and report :func:`error_of_mean` for the emulator
    and each baseline (fitted on the emulator's own training split of ``data``).

    Args:
        emulator: the trained emulator.
        data: the :class:`~nbody_core.emulator.data.TrainingData` it was trained on (same file,
            same energy tolerance: its training split is found by member index).
        grid: points per input, at the centres of ``grid`` equal cells of the box (log cells
            for log inputs); ``grid ** P`` points in all.
        replicas: converged simulations at each point (>= 2; their scatter is the yardstick).
        seed: the replicas' initial-condition seed (unlike the training ensemble's).
        run_options: passed to :func:`~nbody_core.ensembles.run_converged` (``progress``, ...).

    Returns:
        ``{"points": [G, P] raw inputs, "replicas": R, "models": {label: {output: {"ratio",
        "low", "high", "scatter"}}}}`` with labels ``"emulator"`` and :data:`BASELINES`.

    Raises:
        ValueError: ``data`` is not the emulator's training ensemble, or bad sizes.
    """
    from dataclasses import replace as _replace

    from nbody_core.ensembles import Sweep, run_converged
    from .data import spec_fingerprint
    from .inference import training_spec

    if spec_fingerprint(data.spec) != emulator.header["ensemble"]["fingerprint"]:
        raise ValueError("the ensemble is not the one the emulator was trained on (fingerprints differ)")
    if isinstance(grid, bool) or not isinstance(grid, int) or not 1 <= grid <= 8:
        raise ValueError(f"grid must be an integer in [1, 8], got {grid!r}")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 2:
        raise ValueError(f"replicas must be an integer >= 2, got {replicas!r}")
    train = np.isin(data.members, emulator.header["split_members"]["train"])
    low, high = emulator.input_box
    axes = []
    for k in range(len(emulator.input_names)):
        centres = (np.arange(grid) + 0.5) / grid
        if emulator.input_log[k]:
            axes.append(10 ** (np.log10(low[k]) + centres * (np.log10(high[k]) - np.log10(low[k]))))
        else:
            axes.append(low[k] + centres * (high[k] - low[k]))
    sweeps = tuple(Sweep(name, values=tuple(float(v) for v in axis)) for name, axis in zip(emulator.input_names, axes))
    points = grid ** len(axes)
    spec = _replace(training_spec(emulator), sweeps=sweeps, num_members=points * replicas, design="grid", seed=seed,
                    save_trajectories=False)
    energy_tolerance = data.energy_tolerance if data.energy_tolerance is not None else 1e-3
    result = run_converged(spec, energy_tolerance=energy_tolerance, **run_options)
    # Grid design: member i runs point i mod G (itertools.product order of the sweeps).
    values = np.column_stack([result.summaries[n] for n in emulator.output_names]).reshape(replicas, points, -1)
    inputs = np.column_stack([result.table.parameters[n] for n in emulator.input_names])[:points]
    models = {"emulator": lambda raw: emulator.predict(raw)[0]}
    for kind in BASELINES:
        models[kind] = fit_baseline(kind, data.inputs[train], data.outputs[train], input_log=data.input_log)
    out = {}
    for label, predict in models.items():
        metric = error_of_mean(predict(inputs), values, bootstrap=bootstrap)
        out[label] = {name: {key: float(metric[key][k]) for key in ("ratio", "low", "high", "scatter")}
                      for k, name in enumerate(emulator.output_names)}
    return {"points": inputs, "replicas": replicas,
            "unconverged": result.execution["convergence"]["unconverged"], "models": out}
