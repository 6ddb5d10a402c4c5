"""The emulator: a deep ensemble of small Equinox MLPs trained with Optax, saved without pickle.

Contract: :func:`train_emulator` takes :class:`~nbody_core.emulator.data.TrainingData` and
returns ``(Emulator, TrainingReport)``; :meth:`Emulator.predict` maps raw parameter values
``[B, P]`` to a predictive mean and standard deviation ``[B, S]`` of each summary for a new
member (so ``mean ± 2 sd`` should hold ~95 % of fresh simulations); :func:`save_emulator` /
:func:`load_emulator` write and read the versioned ``.npz`` format (:data:`FORMAT`).

Method
    Inputs are log10'd for log-spaced sweeps, then z-scored; outputs are z-scored (both with
    training-split statistics). Each of ``num_networks`` MLPs (SiLU, ``depth`` hidden layers
    of ``width``) outputs a mean and a variance (softplus) per summary and minimises the
    Gaussian negative log-likelihood, so the network learns the member-to-member scatter as
    well as the trend (Lakshminarayanan et al. 2017, "deep ensembles"). The networks are
    one vmapped pytree trained together by full-batch AdamW (the update is elementwise, so
    this is the same as training each alone), with early stopping on the validation loss:
    each network keeps the weights of its own best validation step. The prediction mixes the
    members: mean = average mean, variance = average (variance + mean^2) - mean^2. Finally
    the sd of each output is scaled by the RMS z-score on the validation split (a one-number
    calibration; the test split stays untouched for the checks).
"""

from __future__ import annotations

import io
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nbody_core.io import atomic_write_bytes, load_npz
from .data import Split, TrainingData, split_members
from .gp import fit_gp, gp_predict

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "OUTSIDE_ACTIONS",
    "ExtrapolationWarning",
    "TrainConfig",
    "TrainingReport",
    "Emulator",
    "train_emulator",
    "evaluate",
    "save_emulator",
    "load_emulator",
    "emulator_npz_bytes",
]

FORMAT = "nbody-explorer emulator"
FORMAT_VERSION = 1
#: What :meth:`Emulator.predict` does with a point outside the box it was trained on.
OUTSIDE_ACTIONS = ("warn", "raise", "ignore")


class ExtrapolationWarning(UserWarning):
    """:meth:`Emulator.predict` was asked outside the box it was trained on: it extrapolates
    (measured: the half-mass radius off by 1.9 replica scatter at softening 0.004 for a box
    starting at 0.01)."""


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (all recorded in the model header).

    Attributes:
        num_networks: members of the deep ensemble (E).
        width, depth: hidden units per layer and hidden layers of each MLP.
        learning_rate, weight_decay: AdamW settings.
        max_steps: full-batch steps at most; eval_every: steps between validation checks.
        patience: stop when no network improved its validation loss for this many steps.
        seed: network initialisation and the member split.
        validation, test: fractions of members held out.
        gp_baseline: also fit the exact-GP baseline and report its test metrics.
    """

    num_networks: int = 5
    width: int = 64
    depth: int = 2
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    max_steps: int = 3000
    eval_every: int = 50
    patience: int = 400
    seed: int = 0
    validation: float = 0.15
    test: float = 0.15
    gp_baseline: bool = True

    def __post_init__(self):
        for name in ("num_networks", "width", "depth", "max_steps", "eval_every", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_networks > 32 or self.width > 1024 or self.depth > 8:
            raise ValueError("num_networks <= 32, width <= 1024 and depth <= 8 (a small surrogate)")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if not (0 < self.validation < 0.5 and 0 < self.test < 0.5 and self.validation + self.test < 0.8):
            raise ValueError("validation and test fractions must be in (0, 0.5) and leave members to train on")


class TrainingReport(NamedTuple):
    """What training did: split, loss curves, stopping point, test metrics, timings.

    ``history`` is a list of ``(step, train_loss, validation_loss)`` (losses: mean Gaussian
    NLL in normalised units, averaged over networks); ``metrics`` is :func:`evaluate` on the
    test split for ``"mlp"`` and, when fitted, ``"gp"``.
    """

    split: Split
    history: list
    best_step: list
    steps_run: int
    metrics: dict
    seconds: dict


# ----------------------------------------------------------------------------- networks


def _make_networks(key, num_networks: int, in_size: int, out_size: int, width: int, depth: int):
    def one(k):
        return eqx.nn.MLP(in_size, 2 * out_size, width, depth, activation=jax.nn.silu, key=k)

    return eqx.filter_vmap(one)(jax.random.split(key, num_networks))


def _network_outputs(networks, x):
    """``x [B, P]`` normalised -> (mean, variance) each ``[E, B, S]`` normalised."""

    @eqx.filter_vmap(in_axes=(eqx.if_array(0), None))
    def per_network(network, batch):
        return jax.vmap(network)(batch)

    raw = per_network(networks, x)
    size = raw.shape[-1] // 2
    # softplus keeps the variance positive with a gradient everywhere; the floor (1e-6 of
    # the output's variance) stops the NLL rewarding a collapse onto training points.
    return raw[..., :size], jax.nn.softplus(raw[..., size:]) + 1e-6


def _nll(mean, variance, y):
    """Gaussian negative log-likelihood per network, ``[E]`` (constants dropped)."""
    return 0.5 * jnp.mean(jnp.log(variance) + (y - mean) ** 2 / variance, axis=(-2, -1))


def _mix(mean, variance):
    """Deep-ensemble mixture over the leading network axis: (mean, variance) ``[B, S]``."""
    mix_mean = jnp.mean(mean, axis=0)
    mix_var = jnp.mean(variance + mean**2, axis=0) - mix_mean**2
    return mix_mean, jnp.maximum(mix_var, 1e-12)


# ----------------------------------------------------------------------------- the emulator


@dataclass(frozen=True)
class Emulator:
    """A trained emulator: networks, normalisation and a JSON header (see :data:`FORMAT`).

    Attributes:
        networks: the stacked Equinox MLPs (leading axis: network).
        x_mean, x_std: ``[P]`` normalisation of the (log10'd where ``input_log``) inputs.
        y_mean, y_std: ``[S]`` normalisation of the outputs.
        sigma_scale: ``[S]`` calibration factor of the predictive sd (validation split).
        header: the JSON header (names, units, ranges, architecture, training, metrics).
        correlation: ``[S, S]`` correlation of the outputs' member-to-member scatter (of the
            validation split's z-scores), so the covariance of one fresh member's summaries is
            ``sd_i sd_j correlation_ij``; the identity for files written before it existed.
    """

    networks: Any
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    sigma_scale: np.ndarray
    header: dict = field(default_factory=dict)
    correlation: np.ndarray | None = None

    def __post_init__(self):
        if self.correlation is None:
            object.__setattr__(self, "correlation", np.eye(len(self.header["outputs"])))

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(item["name"] for item in self.header["inputs"])

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(item["name"] for item in self.header["outputs"])

    @property
    def input_log(self) -> np.ndarray:
        return np.asarray([item["log"] for item in self.header["inputs"]], dtype=bool)

    @property
    def input_box(self) -> tuple[np.ndarray, np.ndarray]:
        """``([P] low, [P] high)``: the swept range the emulator was trained on."""
        return (np.asarray([i["low"] for i in self.header["inputs"]], float),
                np.asarray([i["high"] for i in self.header["inputs"]], float))

    def normalise_inputs(self, inputs):
        """Raw ``[B, P]`` -> normalised (jnp; differentiable)."""
        x = jnp.asarray(inputs)
        x = jnp.where(jnp.asarray(self.input_log), jnp.log10(jnp.where(jnp.asarray(self.input_log), x, 1.0)), x)
        return (x - self.x_mean) / self.x_std

    def predict_normalised(self, x_normalised):
        """Normalised inputs ``[B, P]`` -> (mean, sd) ``[B, S]`` in raw output units (jnp)."""
        return _predict(self.networks, x_normalised, self.y_mean, self.y_std, self.sigma_scale)

    def outside_box(self, inputs) -> str:
        """Which of ``inputs`` (``[B, P]`` raw) lie outside :attr:`input_box`, in words
        (``""`` when every point is inside). A relative slack of 1e-9 of each range absorbs
        the round-off of values written and read back."""
        batch = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
        low, high = self.input_box
        slack = 1e-9 * np.abs(high - low)
        outside = (batch < low - slack) | (batch > high + slack)
        if not outside.any():
            return ""
        parts = [
            f"{name} = {', '.join(f'{v:.4g}' for v in np.unique(batch[outside[:, k], k])[:3])}"
            f"{' ...' if np.unique(batch[outside[:, k], k]).size > 3 else ''} outside [{low[k]:.4g}, {high[k]:.4g}]"
            for k, name in enumerate(self.input_names) if outside[:, k].any()
        ]
        return (f"{int(outside.any(axis=1).sum())} of {batch.shape[0]} point(s) outside the box the emulator was "
                f"trained on ({'; '.join(parts)}): the prediction there is an extrapolation")

    def predict(self, inputs, *, outside: str = "warn") -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and sd of each output for a new member at ``inputs``.

        Args:
            inputs: ``[B, P]`` (or ``[P]``) raw parameter values in :attr:`input_names`
                order, their own units.
            outside: a point outside the training box (:attr:`input_box`): ``"warn"``
                (default: an :class:`ExtrapolationWarning`), ``"raise"`` (``ValueError``) or
                ``"ignore"``.

        Returns:
            ``(mean, sd)``, each ``[B, S]`` (or ``[S]``) in the outputs' units; the sd
            includes the member-to-member scatter, so ``mean ± 2 sd`` is a ~95 % band for
            one fresh simulation.

        Raises:
            ValueError: a bad shape, a non-positive log-scaled input, or (``outside="raise"``)
                a point outside the training box.
        """
        if outside not in OUTSIDE_ACTIONS:
            raise ValueError(f"outside must be one of {OUTSIDE_ACTIONS}, got {outside!r}")
        inputs = np.asarray(inputs, dtype=np.float64)
        single = inputs.ndim == 1
        batch = np.atleast_2d(inputs)
        if batch.shape[-1] != len(self.input_names):
            raise ValueError(f"expected {len(self.input_names)} inputs {self.input_names}, got shape {inputs.shape}")
        if np.any(self.input_log & np.any(batch <= 0, axis=0)):
            raise ValueError("a log-scaled input must be positive")
        if outside != "ignore" and (message := self.outside_box(batch)):
            if outside == "raise":
                raise ValueError(message)
            warnings.warn(message, ExtrapolationWarning, stacklevel=2)
        mean, sd = self.predict_normalised(self.normalise_inputs(batch))
        mean, sd = np.asarray(mean), np.asarray(sd)
        return (mean[0], sd[0]) if single else (mean, sd)

    def predict_named(self, values: dict[str, float], *, outside: str = "warn") -> dict[str, tuple[float, float]]:
        """``{input: value}`` (every input) -> ``{output: (mean, sd)}`` (``outside``: as in
        :meth:`predict`)."""
        missing = [n for n in self.input_names if n not in values]
        extra = [n for n in values if n not in self.input_names]
        if missing or extra:
            detail = []
            if missing:
                detail.append(f"missing {missing}")
            if extra:
                detail.append(f"not an input of this emulator: {extra}")
            raise ValueError(f"the emulator takes {list(self.input_names)}; " + "; ".join(detail))
        mean, sd = self.predict([float(values[n]) for n in self.input_names], outside=outside)
        return {name: (float(m), float(s)) for name, m, s in zip(self.output_names, mean, sd)}


@eqx.filter_jit
def _predict(networks, x, y_mean, y_std, sigma_scale):
    mean, variance = _mix(*_network_outputs(networks, x))
    return mean * y_std + y_mean, jnp.sqrt(variance) * sigma_scale * y_std


# ----------------------------------------------------------------------------- training


def _normalisation(data: TrainingData, rows):
    x = np.where(np.asarray(data.input_log), np.log10(np.where(np.asarray(data.input_log), data.inputs, 1.0)), data.inputs)
    x_mean, x_std = x[rows].mean(axis=0), x[rows].std(axis=0)
    y_mean, y_std = data.outputs[rows].mean(axis=0), data.outputs[rows].std(axis=0)
    # A column constant on the training split keeps unit scale (no division by zero).
    x_std = np.where(x_std > 0, x_std, 1.0)
    y_std = np.where(y_std > 0, y_std, 1.0)
    return x, x_mean, x_std, y_mean, y_std


def evaluate(predict_fn: Callable, inputs, outputs, names) -> dict[str, dict[str, float]]:
    """Per output: test RMSE, fraction of points inside ±2 sd, mean predicted sd.

    Args:
        predict_fn: raw ``[B, P]`` -> ``(mean, sd)`` ``[B, S]``.
        inputs, outputs: ``[B, P]``, ``[B, S]`` held-out simulations.
        names: the S output names.
    """
    mean, sd = predict_fn(np.asarray(inputs))
    mean, sd, outputs = np.asarray(mean), np.asarray(sd), np.asarray(outputs)
    error = mean - outputs
    out = {}
    for k, name in enumerate(names):
        out[name] = {
            "rmse": float(np.sqrt(np.mean(error[:, k] ** 2))),
            "coverage_2sigma": float(np.mean(np.abs(error[:, k]) <= 2 * sd[:, k])),
            "mean_sd": float(np.mean(sd[:, k])),
            "num_points": int(outputs.shape[0]),
        }
    return out


def train_emulator(
    data: TrainingData,
    config: TrainConfig = TrainConfig(),
    *,
    progress: Callable[[int, int, float, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    source: str | None = None,
) -> tuple[Emulator, TrainingReport]:
    """Train the deep ensemble (and the GP baseline) on ``data``.

    Args:
        data: inputs and outputs of an ensemble.
        config: network size, optimiser, early stopping, seed, split fractions.
        progress: called after every validation check with ``(step, max_steps,
            train_loss, validation_loss)``.
        should_stop: polled between checks; True stops early (best weights so far kept).
        source: the ensemble file's name, recorded in the header.

    Returns:
        ``(emulator, report)``; the report's metrics are on the test split.
    """
    started = time.perf_counter()
    split = split_members(data.num_members, seed=config.seed, validation=config.validation, test=config.test)
    x_all, x_mean, x_std, y_mean, y_std = _normalisation(data, split.train)
    xn = (x_all - x_mean) / x_std
    yn = (data.outputs - y_mean) / y_std
    x_train, y_train = jnp.asarray(xn[split.train]), jnp.asarray(yn[split.train])
    x_val, y_val = jnp.asarray(xn[split.validation]), jnp.asarray(yn[split.validation])
    networks = _make_networks(jax.random.key(config.seed), config.num_networks, xn.shape[1], yn.shape[1],
                              config.width, config.depth)
    params, static = eqx.partition(networks, eqx.is_array)
    optimizer = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)

    def losses(params, x, y):
        return _nll(*_network_outputs(eqx.combine(params, static), x), y)  # [E]

    @jax.jit
    def train_chunk(params, opt_state):
        def step(carry, _):
            params, opt_state = carry
            # Summed over networks: each network's gradient is its own loss's gradient.
            value, grads = jax.value_and_grad(lambda p: jnp.sum(losses(p, x_train, y_train)))(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, opt_state), values = jax.lax.scan(step, (params, opt_state), None, length=config.eval_every)
        return params, opt_state, values[-1] / config.num_networks, losses(params, x_val, y_val)

    @jax.jit
    def keep_best(best, params, improved):
        def pick(b, p):
            mask = improved.reshape((-1,) + (1,) * (p.ndim - 1))
            return jnp.where(mask, p, b)

        return jax.tree_util.tree_map(pick, best, params)

    opt_state = optimizer.init(params)
    best = params
    best_loss = np.asarray(losses(params, x_val, y_val))
    best_step = np.zeros(config.num_networks, dtype=int)
    history = []
    step = 0
    compile_started = time.perf_counter()
    while step < config.max_steps:
        params, opt_state, train_loss, val_loss = train_chunk(params, opt_state)
        step += config.eval_every
        val_loss = np.asarray(val_loss)
        improved = val_loss < best_loss
        best = keep_best(best, params, jnp.asarray(improved))
        best_loss = np.where(improved, val_loss, best_loss)
        best_step = np.where(improved, step, best_step)
        history.append((step, float(train_loss), float(np.mean(val_loss))))
        if progress is not None:
            progress(step, config.max_steps, float(train_loss), float(np.mean(val_loss)))
        if step - int(best_step.max()) >= config.patience:
            break
        if should_stop is not None and should_stop():
            break
    train_seconds = time.perf_counter() - compile_started
    networks = eqx.combine(best, static)

    # Calibrate the sd on the validation split: RMS z-score per output (1 when honest).
    mean_v, var_v = _mix(*_network_outputs(networks, x_val))
    z = (np.asarray(mean_v) - np.asarray(y_val)) / np.sqrt(np.asarray(var_v))
    sigma_scale = np.sqrt(np.mean(z**2, axis=0))
    # The scatter of one member's summaries is correlated (the 10 % and 50 % Lagrangian radii at
    # ~0.5): their correlation, from the same held-out z-scores, gives the full covariance a
    # synthetic likelihood needs (Wood 2010). A single output (or a constant one) gives 1.
    correlation = np.atleast_2d(np.corrcoef(z, rowvar=False)) if z.shape[1] > 1 else np.ones((1, 1))
    correlation = np.where(np.isfinite(correlation), correlation, np.eye(z.shape[1]))

    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {
            "kind": "deep ensemble of MLPs (equinox.nn.MLP), Gaussian mean + softplus variance heads",
            "num_networks": config.num_networks,
            "width": config.width,
            "depth": config.depth,
            "activation": "silu",
            "in_size": int(xn.shape[1]),
            "out_size": int(2 * yn.shape[1]),
        },
        "inputs": [
            {"name": n, "unit": u, "log": bool(lg), "low": lo, "high": hi}
            for n, u, lg, lo, hi in zip(data.input_names, data.input_units, data.input_log,
                                        data.input_low, data.input_high)
        ],
        "outputs": [{"name": n, "unit": u} for n, u in zip(data.output_names, data.output_units)],
        "unit_system": data.unit_system,
        "normalisation": "x' = (x - x_mean) / x_std with x = log10(value) for log inputs; "
        "y' = (y - y_mean) / y_std; statistics of the training split",
        "ensemble": {
            "source": source,
            "fingerprint": data.fingerprint,
            "fingerprint_method": "sha256 of json.dumps(metadata['spec'], sort_keys=True)",
            "spec": data.spec,
            "usable_members": data.num_members,
            "dropped_members": data.dropped,
        },
        "training": {
            **{k: getattr(config, k) for k in TrainConfig.__dataclass_fields__},
            "split_sizes": {"train": len(split.train), "validation": len(split.validation), "test": len(split.test)},
            "steps_run": step,
            "best_step": best_step.tolist(),
            "optimizer": "optax.adamw, full batch",
            "loss": "Gaussian negative log-likelihood (normalised units)",
            "sigma_calibration": "sd scaled by the RMS z-score on the validation split",
            "correlation": "correlation matrix of the validation split's z-scores (array 'correlation')",
        },
        "dtype": str(x_train.dtype),
    }
    emulator = Emulator(networks, x_mean, x_std, y_mean, y_std, sigma_scale, header, correlation)
    x_test, y_test = data.inputs[split.test], data.outputs[split.test]
    metrics = {"mlp": evaluate(emulator.predict, x_test, y_test, data.output_names)}
    seconds = {"train": train_seconds}
    if config.gp_baseline:
        gp_started = time.perf_counter()
        gp = fit_gp(xn[split.train], yn[split.train], seed=config.seed)

        def gp_fn(raw):
            mean, sd = gp_predict(gp, emulator.normalise_inputs(raw))
            return np.asarray(mean) * y_std + y_mean, np.asarray(sd) * y_std

        metrics["gp"] = evaluate(gp_fn, x_test, y_test, data.output_names)
        seconds["gp"] = time.perf_counter() - gp_started
    seconds["total"] = time.perf_counter() - started
    header["metrics_test"] = metrics
    header["split_members"] = {k: data.members[getattr(split, k)].tolist() for k in ("train", "validation", "test")}
    return emulator, TrainingReport(split, history, best_step.tolist(), step, metrics, seconds)


# ----------------------------------------------------------------------------- file format


def _arrays(emulator: Emulator) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_leaves(eqx.filter(emulator.networks, eqx.is_array))
    out = {f"network_leaf_{k:03d}": np.asarray(leaf) for k, leaf in enumerate(leaves)}
    out.update(x_mean=np.asarray(emulator.x_mean), x_std=np.asarray(emulator.x_std),
               y_mean=np.asarray(emulator.y_mean), y_std=np.asarray(emulator.y_std),
               sigma_scale=np.asarray(emulator.sigma_scale), correlation=np.asarray(emulator.correlation))
    return out


def emulator_npz_bytes(emulator: Emulator) -> bytes:
    """The bytes :func:`save_emulator` writes (for downloads)."""
    buffer = io.BytesIO()
    header = np.array(json.dumps(emulator.header, sort_keys=True, default=str))
    np.savez_compressed(buffer, **_arrays(emulator), metadata=header)
    return buffer.getvalue()


def save_emulator(emulator: Emulator, path) -> Path:
    """Write the model as one compressed ``.npz`` atomically (no pickle).

    Arrays: ``network_leaf_000 ...`` (the stacked MLP weights and biases in
    ``jax.tree_util`` leaf order, leading axis = network), ``x_mean``, ``x_std`` ``[P]``,
    ``y_mean``, ``y_std``, ``sigma_scale`` ``[S]``, ``correlation`` ``[S, S]``; ``metadata``: the JSON header
    (:data:`FORMAT`, ``format_version``, architecture, inputs with units/log/range, outputs
    with units, normalisation, the ensemble's spec and fingerprint, training settings,
    test metrics and the member split).
    """
    return atomic_write_bytes(path, emulator_npz_bytes(emulator))


def load_emulator(path) -> Emulator:
    """Read a model written by :func:`save_emulator` (``allow_pickle=False``).

    Raises:
        ValueError: not an emulator file, an unknown format version, or arrays that do not
            match the architecture in the header.
        OSError: the file does not exist.
    """
    arrays, header = load_npz(path)
    name = repr(str(getattr(path, "name", path)))
    if header.get("format") != FORMAT:
        raise ValueError(f"{name} is not an emulator file written by 'nbody emulate train'")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{name} has emulator format version {header.get('format_version')!r}; "
                         f"this version reads {FORMAT_VERSION}")
    arch = header["architecture"]
    skeleton = eqx.filter_eval_shape(_make_networks, jax.random.key(0), arch["num_networks"], arch["in_size"],
                                     arch["out_size"] // 2, arch["width"], arch["depth"])
    params, static = eqx.partition(skeleton, lambda leaf: isinstance(leaf, jax.ShapeDtypeStruct))
    shapes, treedef = jax.tree_util.tree_flatten(params)
    leaves = []
    for k, shape in enumerate(shapes):
        key = f"network_leaf_{k:03d}"
        if key not in arrays or arrays[key].shape != shape.shape or arrays[key].dtype != shape.dtype:
            raise ValueError(f"{name}: weights do not match the architecture in the header ({key})")
        leaves.append(jnp.asarray(arrays[key]))
    networks = eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
    size = arch["out_size"] // 2
    if "correlation" in arrays and arrays["correlation"].shape != (size, size):
        raise ValueError(f"{name}: the correlation matrix is not {size} x {size}")
    return Emulator(networks, arrays["x_mean"], arrays["x_std"], arrays["y_mean"], arrays["y_std"],
                    arrays["sigma_scale"], header, arrays.get("correlation"))
