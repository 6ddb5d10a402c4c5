"""Honest accuracy (issue 27, item 3): the debiased error of the mean over the scatter is 0 for
the true mean and the true offset for a biased one, whatever the replica count; baselines
recover what they can represent; ``nbody emulate check`` prints the table."""

import numpy as np
import pytest

from nbody_core.cli import main
from nbody_core.emulator.metrics import error_of_mean, fit_baseline


def test_error_of_mean_is_debiased_against_the_replica_noise():
    rng = np.random.default_rng(7)
    points, replicas, scatter = 2000, 4, 0.3
    truth = rng.normal(size=(points, 2))
    draws = truth + scatter * rng.standard_normal((replicas, points, 2))
    exact = error_of_mean(truth, draws, bootstrap=300)
    # Without the s^2 / R correction the true mean would score sqrt(1/R) = 0.5; debiased it is
    # 0 up to sampling noise (the square root of a mean near 0: measured 0.09 and 0 here).
    assert np.all(exact["ratio"] < 0.2) and np.all(exact["low"] == 0)
    biased = error_of_mean(truth + 0.5 * scatter, draws, bootstrap=300)
    # Offset of half the scatter: 0.5 up to the same noise (measured 0.53 and 0.49).
    np.testing.assert_allclose(biased["ratio"], 0.5, atol=0.08)
    assert np.all(biased["low"] > 0.4)
    np.testing.assert_allclose(exact["scatter"], scatter, rtol=0.05)
    with pytest.raises(ValueError, match="replicas"):
        error_of_mean(truth, draws[:1])


def test_baselines_fit_what_they_can_represent():
    rng = np.random.default_rng(1)
    x = np.column_stack([10 ** rng.uniform(-2, -0.5, 50), rng.uniform(0.3, 0.7, 50)])
    u = np.log10(x[:, 0])
    y = np.column_stack([1 + 2 * u - 3 * x[:, 1] + u * x[:, 1] + 0.5 * u**2, np.full(50, 4.0)])
    quadratic = fit_baseline("quadratic", x, y, input_log=[True, False])
    np.testing.assert_allclose(quadratic(x), y, atol=1e-10)
    linear = fit_baseline("linear", x, y, input_log=[True, False])
    assert np.abs(linear(x)[:, 0] - y[:, 0]).max() > 1e-3
    np.testing.assert_allclose(fit_baseline("training mean", x, y, input_log=[True, False])(x[:3]),
                               np.tile(y.mean(axis=0), (3, 1)))
    with pytest.raises(ValueError, match="kind"):
        fit_baseline("cubic", x, y, input_log=[True, False])


def test_cli_check_prints_the_emulator_beside_the_baselines(tmp_path, capsys):
    ensemble, model = tmp_path / "data.npz", tmp_path / "model.npz"
    assert main(["ensemble", "--preset", "plummer", "--n", "8", "--members", "48", "--steps", "20", "--dt", "0.005",
                 "--sweep", "virial_ratio=0.3:0.7", "--design", "random", "--quiet", "--out", str(ensemble)]) == 0
    assert main(["emulate", "train", str(ensemble), "--out", str(model), "--networks", "2", "--width", "16",
                 "--max-steps", "100", "--no-gp", "--quiet"]) == 0
    capsys.readouterr()
    code = main(["emulate", "check", str(model), str(ensemble), "--grid", "2", "--replicas", "4"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for label in ("emulator", "training mean", "linear", "quadratic"):
        assert label in captured.out
    assert "2 points x 4 replicas" in captured.out
    code = main(["emulate", "check", str(model), str(model)])
    assert code == 2 and "not an ensemble" in capsys.readouterr().err
