"""``nbody infer``: runs headless, writes ArviZ-readable samples, one-line errors."""

import json

import numpy as np
import pytest

from nbody_core.infer import inference, posterior
from nbody_core.cli import main
from nbody_core.io import load_npz

SMALL = ["--problem", "triple", "--chains", "2", "--samples", "100", "--warmup", "40", "--num-obs", "4", "--seed", "3"]


def test_infer_writes_netcdf_and_npz(tmp_path, capsys):
    nc = tmp_path / "samples.nc"
    assert main(["infer", *SMALL, "--out", str(nc), "--progress", "on"]) == 0
    captured = capsys.readouterr()
    assert "log_m0" in captured.out and "acceptance" in captured.out
    assert "sampling" in captured.err  # the progress bar
    idata = posterior.arviz().from_netcdf(str(nc))
    # Physical masses beside the log masses (issue 12 point 11).
    assert set(idata.posterior.data_vars) == {"log_m0", "log_m1", "log_m2", "m0", "m1", "m2"}
    assert {"log_likelihood", "posterior_predictive", "prior", "warmup_posterior"} <= set(idata.groups())
    assert idata.posterior.sizes == {"chain": 2, "draw": 100}
    assert {"energy", "diverging", "acceptance_rate"} <= set(idata.sample_stats.data_vars)
    diagnostics = json.loads(idata.attrs["diagnostics"])
    assert {"log_m0", "log_m1", "log_m2"} <= set(diagnostics["parameters"])
    assert np.asarray(idata.constant_data["true_log_m0"]).item() == pytest.approx(np.log(1.1))

    npz = tmp_path / "samples.npz"
    assert main(["infer", *SMALL, "--out", str(npz), "--progress", "off"]) == 0
    arrays, metadata = load_npz(npz)
    assert arrays["posterior"].shape == (2, 100, 3)
    assert metadata["parameter_names"] == ["log_m0", "log_m1", "log_m2"]
    # Same seed, same draws, whatever the output format.
    np.testing.assert_array_equal(arrays["posterior"][..., 0], idata.posterior["log_m0"].values)
    assert arrays["sample_stats_diverging"].shape == (2, 100)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "x.txt"], "--out must end in .nc or .npz"),
        (["--out", "no/such/dir/x.nc"], "does not exist"),
        (["--out", "x.nc", "--noise", "-1"], "noise must be a positive"),
        (["--out", "x.nc", "--step-size", "abc"], "--step-size must be 'auto' or a positive number"),
        (["--out", "x.nc", "--chains", "0"], "num_chains must be an integer >= 1"),
        (["--out", "x.nc", "--problem", "quintuple"], "invalid choice"),
        (["--out", "x.nc", "--warmup", "0"], "--step-size auto needs --warmup >= 1"),
        (["--out", "x.nc", "--metric", "dense"], "argument --metric: invalid choice: 'dense'"),
    ],
)
def test_bad_input_gives_one_line_error(extra, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["infer", *extra])
    except SystemExit as exit_:  # argparse's own errors (also made one line)
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_seed_sets_data_and_chain_seeds(tmp_path, capsys):
    def run(*seeds):
        path = tmp_path / f"s{len(list(tmp_path.iterdir()))}.npz"
        base = [a for a in SMALL if a not in ("--seed", "3")]
        assert main(["infer", *base, *seeds, "--out", str(path), "--progress", "off"]) == 0
        return load_npz(path)

    (both, _), (split, split_meta) = run("--seed", "3"), run("--data-seed", "3", "--chain-seed", "3")
    # --seed S is --data-seed S --chain-seed S: the same data and the same draws.
    np.testing.assert_array_equal(both["observations"], split["observations"])
    np.testing.assert_array_equal(both["posterior"], split["posterior"])
    assert split_meta["diagnostics"]["data_seed"] == 3 and split_meta["diagnostics"]["chain_seed"] == 3
    # A new chain seed changes the chains, not the data.
    other, _ = run("--data-seed", "3", "--chain-seed", "4")
    np.testing.assert_array_equal(both["observations"], other["observations"])
    assert not np.array_equal(both["posterior"], other["posterior"])
    capsys.readouterr()


def test_disagreeing_chains_warn_and_can_fail(tmp_path, capsys):
    # A step size of 1e-7 and no warm-up: each chain stays at its own prior draw, so the chains
    # cannot agree. The former CLI printed the table and exited 0 without a word.
    stuck = [*SMALL, "--warmup", "0", "--step-size", "1e-7", "--samples", "20", "--progress", "off"]
    path = tmp_path / "stuck.npz"
    assert main(["infer", *stuck, "--out", str(path)]) == 0
    err = capsys.readouterr().err
    assert "warning: chains disagree" in err
    _, metadata = load_npz(path)
    assert metadata["diagnostics"]["chains_disagree"] is True
    assert metadata["diagnostics"]["mode_check"]["max_r_hat"] > 1.05
    assert main(["infer", *stuck, "--out", str(path), "--fail-on-disagreement"]) == 3


def test_nuts_sampler_option(tmp_path, capsys):
    path = tmp_path / "nuts.npz"
    code = main(["infer", *SMALL, "--sampler", "nuts", "--out", str(path), "--progress", "off"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    arrays, metadata = load_npz(path)
    assert metadata["sampler"] == "nuts" and arrays["posterior"].shape == (2, 100, 3)
    d = metadata["diagnostics"]
    # NUTS reports its own leapfrog count: at least one gradient per draw, at most 2**10 - 1.
    assert 2 * 100 <= d["gradient_evaluations"] <= 2 * 100 * 1023
    assert d["min_ess_bulk_per_gradient"] > 0
    assert "nuts" in captured.out


def test_own_observations_from_csv(tmp_path, capsys):
    # Issue 12 point 11: there was no way to pass your own data. Write a problem's observations
    # as t,body,x,y,z and read them back: same data, same posterior inputs.
    problem = inference.make_problem("triple", num_obs=4, key=__import__("jax").random.key(9))
    path = tmp_path / "obs.csv"
    lines = ["t,body,x,y,z"]
    for t, frame in zip(problem.observed_times, problem.observations):
        lines += [f"{float(t)!r},{b},{float(x)!r},{float(y)!r}," for b, (x, y) in enumerate(frame)]
    path.write_text("\n".join(lines) + "\n")
    times, values = inference.read_observations_csv(path, num_bodies=3)
    np.testing.assert_array_equal(values, problem.observations)
    own = inference.make_problem("triple", observations=(times, values))
    np.testing.assert_array_equal(own.observations, problem.observations)
    assert float(own.logdensity_fn(own.truth)) == float(problem.logdensity_fn(problem.truth))
    out = tmp_path / "own.npz"
    base = [a for a in SMALL if a not in ("--num-obs", "4")]
    assert main(["infer", *base, "--observations", str(path), "--out", str(out), "--progress", "off"]) == 0
    arrays, _ = load_npz(out)
    np.testing.assert_array_equal(arrays["observations"], problem.observations)
    path.write_text("t,body,x,y,z\n0.5,0,1,2,\n")
    assert main(["infer", *base, "--observations", str(path), "--out", str(out)]) == 2
    assert "lists 1 of 3 bodies" in capsys.readouterr().err


def test_metric_option_and_its_leapfrog_steps(tmp_path, capsys):
    # The default (defaults.METRIC, "laplace") samples in Laplace-whitened coordinates with 2 leapfrog
    # steps; --metric diagonal is the former sampler with 10. Both write their draws in theta.
    runs = {}
    for extra in ([], ["--metric", "diagonal"]):
        path = tmp_path / f"m{len(runs)}.npz"
        assert main(["infer", *SMALL, *extra, "--out", str(path), "--progress", "off"]) == 0
        arrays, metadata = load_npz(path)
        runs[metadata["metric"]] = (arrays["posterior"], metadata)
    capsys.readouterr()
    assert set(runs) == {"laplace", "diagonal"}
    laplace, diagonal = runs["laplace"][1], runs["diagonal"][1]
    assert (laplace["leapfrog_steps"], diagonal["leapfrog_steps"]) == (2, 10)
    assert laplace["diagnostics"]["metric"] == "laplace"
    assert laplace["diagnostics"]["gradient_evaluations"] == 2 * 100 * 2
    # In theta, both posteriors have the same spread (the masses' posterior sd, ~1e-2 here); draws
    # left in the whitened coordinates would have sd ~1. A factor 2: 200 draws of each, ESS > 50.
    sd_laplace, sd_diagonal = runs["laplace"][0].std(axis=(0, 1)), runs["diagonal"][0].std(axis=(0, 1))
    assert np.all(sd_laplace < 2 * sd_diagonal) and np.all(sd_diagonal < 2 * sd_laplace), (sd_laplace, sd_diagonal)
    np.testing.assert_allclose(runs["laplace"][0].mean(axis=(0, 1)), runs["diagonal"][0].mean(axis=(0, 1)),
                               atol=float(3 * sd_diagonal.max()))
