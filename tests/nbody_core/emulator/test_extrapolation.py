"""``Emulator.predict`` outside the box it was trained on: warns by default, raises or stays
quiet on request, in the API and in ``nbody emulate predict``.

Issue 27: at softening 0.004, below a box starting at 0.01, the half-mass radius came out
1.9 replica scatter off, and only the CLI said anything. A tiny emulator on a synthetic set
is enough here: the check is about the box, not the fit.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from nbody_core.cli import main
from nbody_core.emulator import (
    ExtrapolationWarning,
    TrainConfig,
    save_emulator,
    train_emulator,
    training_data_from_arrays,
)


@pytest.fixture(scope="module")
def emulator():
    rng = np.random.default_rng(0)
    num = 60
    softening = np.exp(rng.uniform(np.log(0.01), np.log(0.3), num))
    virial_ratio = rng.uniform(0.3, 0.7, num)
    arrays = {
        "parameters": np.column_stack([np.full(num, 0.01), softening, virial_ratio]),
        "parameter_names": np.asarray(["dt", "softening", "virial_ratio"]),
        "summaries": np.column_stack([np.log(softening) + virial_ratio, np.ones(num)]),
        "summary_names": np.asarray(["final_virial_ratio", "finite"]),
    }
    spec = {"system": "plummer", "sweeps": ["softening=0.01:0.3:log", "virial_ratio=0.3:0.7"]}
    data = training_data_from_arrays(arrays, {"format": "nbody-explorer ensemble v1", "spec": spec, "units": "nbody"})
    model, _ = train_emulator(data, TrainConfig(num_networks=1, width=8, max_steps=20, eval_every=10, seed=0))
    return model


def test_inside_the_box_is_silent(emulator):
    low, high = emulator.input_box
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        emulator.predict(np.stack([low, high, (low + high) / 2]))  # the edges are inside


def test_outside_warns_by_default_raises_or_ignores_on_request(emulator):
    names = emulator.input_names
    point = [0.004 if n == "softening" else 0.5 for n in names]  # softening below the box
    with pytest.warns(ExtrapolationWarning, match=r"1 of 1 point\(s\) outside .*softening = 0.004 outside \[0.01, 0.3\]"):
        mean, sd = emulator.predict(point)
    assert np.all(np.isfinite(mean)) and np.all(sd > 0)  # still answers
    with pytest.raises(ValueError, match="softening = 0.004 outside"):
        emulator.predict(point, outside="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = emulator.predict(point, outside="ignore")
    np.testing.assert_array_equal(quiet[0], mean)
    with pytest.warns(ExtrapolationWarning, match="virial_ratio = 0.9"):
        emulator.predict_named({n: (0.9 if n == "virial_ratio" else 0.05) for n in names})
    with pytest.raises(ValueError, match="outside must be one of"):
        emulator.predict(point, outside="clip")


def test_cli_warns_refuses_or_ignores(emulator, tmp_path, capsys):
    model = tmp_path / "model.npz"
    save_emulator(emulator, model)
    args = ["emulate", "predict", str(model), "--param", "softening=0.004", "--param", "virial_ratio=0.5", "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "warning: 1 of 1 point(s) outside the box" in captured.err and json.loads(captured.out)
    assert main(args + ["--outside", "ignore"]) == 0
    assert capsys.readouterr().err == ""
    assert main(args + ["--outside", "raise"]) == 2
    err = capsys.readouterr().err
    assert "softening = 0.004 outside [0.01, 0.3]" in err and len(err.splitlines()) == 1
