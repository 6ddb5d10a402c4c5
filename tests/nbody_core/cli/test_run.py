"""The ``nbody`` console script: presets, runs, the npz it writes, and one-line errors."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nbody_core as nb
from nbody_core.cli import main
from nbody_core.io import initial_conditions_csv_text, load_npz


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_presets_one_line_each(capsys):
    code, out, err = run_cli(capsys, "presets")
    assert code == 0 and err == ""
    lines = [line for line in out.strip().splitlines() if not line.startswith(" ")]  # parameters indented
    assert [line.split()[0] for line in lines] == list(nb.PRESETS)
    assert "N=9" in next(line for line in lines if line.startswith("solar_system"))


def test_run_preset_lands_on_t_end_and_writes_npz(capsys, tmp_path):
    out = tmp_path / "f8.npz"
    t_end = nb.FIGURE_EIGHT_PERIOD
    code, stdout, err = run_cli(
        capsys, "run", "--preset", "figure_eight", "--t-end", str(t_end), "--dt", "0.003",
        "--save-every", "100", "--out", str(out),
    )
    assert code == 0, err
    assert len(stdout.strip().splitlines()) == 1 and "relative energy error" in stdout
    arrays, metadata = load_npz(out)
    num_steps = math.ceil(t_end / 0.003)
    assert metadata["num_steps"] == num_steps
    # Uniform steps land exactly on t_end; snapshot k is at k * save_every * dt, by
    # multiplication (issue 12 point 5: no accumulated round-off).
    assert arrays["t"][-1] == t_end
    np.testing.assert_array_equal(arrays["t"][:-1], np.arange(len(arrays["t"]) - 1) * 100 * metadata["dt"])
    num_snapshots = 1 + math.ceil(num_steps / 100)
    assert arrays["t"].shape == (num_snapshots,)
    assert arrays["position"].shape == arrays["velocity"].shape == (num_snapshots, 3, 3)
    assert arrays["mass"].shape == (3,) and arrays["energy"].shape == (num_snapshots,)
    # Leapfrog at dt = 0.003 keeps the figure-eight's energy to ~1e-5 (error ~ dt^2).
    assert np.abs(arrays["energy"] / arrays["energy"][0] - 1).max() < 1e-4
    for key in ("integrator", "dt", "t_end", "save_every", "forces", "dtype", "params", "versions", "source"):
        assert key in metadata
    assert metadata["source"]["seed"] == 0 and metadata["versions"]["jax"]
    assert set(metadata["units"]) >= {"t", "position", "velocity", "mass", "energy"}
    assert metadata["units"]["position"] == "L"


def test_solar_system_units_and_overrides(capsys, tmp_path):
    out = tmp_path / "sun.npz"
    code, _, err = run_cli(
        capsys, "run", "--preset", "solar_system", "--steps", "20", "--dt", "0.01",
        "--softening", "0.001", "--forces", "autodiff", "--out", str(out),
    )
    assert code == 0, err
    arrays, metadata = load_npz(out)
    assert metadata["units"]["velocity"] == "AU / yr" and metadata["units"]["t"] == "yr"
    assert metadata["params"]["softening"] == 0.001 and metadata["forces"] == "autodiff"
    assert metadata["params"]["G"] == pytest.approx(4 * math.pi**2, rel=1e-3)  # Kepler III in AU, yr
    assert metadata["body_names"][0] == "Sun" and arrays["position"].shape[1] == 9


def test_progress_chunks_match_single_scan(capsys, tmp_path):
    # The progress bar runs the trajectory in equal chunks; the physics must not change.
    paths = {}
    for mode in ("never", "always"):
        paths[mode] = tmp_path / f"{mode}.npz"
        code, _, err = run_cli(
            capsys, "run", "--preset", "kepler", "--steps", "400", "--save-every", "7",
            "--progress", mode, "--out", str(paths[mode]),
        )
        assert code == 0
        assert ("step" in err) == (mode == "always")
    single, _ = load_npz(paths["never"])
    chunked, _ = load_npz(paths["always"])
    np.testing.assert_array_equal(single["t"], chunked["t"])
    np.testing.assert_allclose(chunked["position"], single["position"], rtol=0, atol=1e-13)


def test_ic_csv_float32_and_dopri8(capsys, tmp_path):
    csv = tmp_path / "ic.csv"
    csv.write_text(initial_conditions_csv_text(nb.kepler(1.0, 0.3, a=1.0, e=0.6)))
    out = tmp_path / "k.npz"
    code, _, err = run_cli(capsys, "run", "--ic", str(csv), "--dt", "0.01", "--steps", "50",
                           "--dtype", "float32", "--out", str(out))
    assert code == 0, err
    arrays, metadata = load_npz(out)
    assert arrays["position"].dtype == np.float32 and metadata["dtype"] == "float32"
    out = tmp_path / "d.npz"
    period = nb.kepler_period(a=1.0, total_mass=1.3)
    # The adaptive path needs no --dt: tolerance and save interval say what they mean.
    code, stdout, err = run_cli(capsys, "run", "--ic", str(csv), "--integrator", "dopri8",
                                "--t-end", str(period), "--save-interval", str(period / 8), "--rtol", "1e-12",
                                "--out", str(out))
    assert code == 0, err
    arrays, metadata = load_npz(out)
    assert arrays["t"].shape == (9,) and metadata["adaptive_stats"]["accepted_steps"] > 0
    assert metadata["adaptive_stats"]["rejected_steps"] >= 0 and metadata["adaptive_stats"]["result"] == "successful"
    assert metadata["dt"] is None and metadata["num_steps"] is None and metadata["rtol"] == 1e-12
    steps = metadata["adaptive_stats"]["accepted_steps"]
    assert f"dopri8 rtol=1e-12, {steps} accepted" in stdout and " x " not in stdout  # no "dt=... x N steps"
    # After one period the analytic Kepler orbit is back at its start (dopri8 at 1e-12).
    np.testing.assert_allclose(arrays["position"][-1], arrays["position"][0], atol=1e-9)


def test_ic_without_a_step_or_integrator_runs_ias15(capsys, tmp_path):
    # nbody_core.defaults: no --dt, no --steps and no --integrator is an adaptive run (it was refused:
    # "--dt is required with --ic"); with --dt, leapfrog.
    csv = tmp_path / "ic.csv"
    csv.write_text(initial_conditions_csv_text(nb.kepler(1.0, 0.3, a=1.0, e=0.6)))
    out = tmp_path / "k.npz"
    code, _, err = run_cli(capsys, "run", "--ic", str(csv), "--t-end", "0.5", "--save-interval", "0.25",
                           "--out", str(out))
    assert code == 0, err
    arrays, metadata = load_npz(out)
    assert metadata["integrator"] == "ias15" and arrays["t"].shape == (3,)
    code, _, err = run_cli(capsys, "run", "--ic", str(csv), "--dt", "0.01", "--steps", "5", "--out", str(out))
    assert code == 0, err
    assert load_npz(out)[1]["integrator"] == "leapfrog"


@pytest.mark.slow  # ~20 s: compiles IAS15 and integrates ~13k steps
def test_pythagorean_with_ias15_keeps_energy(capsys, tmp_path):
    out = tmp_path / "p.npz"
    code, stdout, err = run_cli(capsys, "run", "--preset", "pythagorean", "--integrator", "ias15",
                                "--t-end", "70", "--save-interval", "0.7", "--out", str(out))
    assert code == 0, err
    arrays, metadata = load_npz(out)
    assert metadata["integrator"] == "ias15" and metadata["adaptive_stats"]["accepted_steps"] > 10_000
    assert arrays["t"][-1] == 70.0
    # IAS15's error at t = 70 is ~1e-13 (tests/nbody_core/test_ias15.py); issue 12 asks for <= 3e-11.
    assert metadata["final_relative_energy_error"] <= 3e-11


def _write(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return str(path)


HEADER = "m,x,y,z,vx,vy,vz\n"
GOOD_ROW = "1,0,0,0,0,0,0\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ic", "{empty}"], "CSV file is empty"),
        (["--ic", "{header_only}"], "header but no bodies"),
        (["--ic", "{bad_header}"], "CSV header must be exactly"),
        (["--ic", "{not_number}"], "line 3: x value 'abc' is not a number"),
        (["--ic", "{short_row}"], "line 3: expected 7 values, got 3"),
        (["--ic", "{nan}"], "line 3: vx is not finite"),
        (["--ic", "{inf}"], "line 2: y is not finite"),
        (["--ic", "{negative_mass}"], "mass must be positive, body 1"),
        (["--ic", "{one_body}"], "at least 2 bodies"),
        (["--ic", "/nonexistent/ic.csv"], "does not exist"),
        (["--preset", "kepler", "--dt", "0"], "dt must be a positive finite number"),
        (["--preset", "kepler", "--dt=-1e-3"], "dt must be a positive finite number"),
        (["--preset", "kepler", "--dt", "nan"], "dt must be a positive finite number"),
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--preset", "kepler", "--integrator", "verlet9"], "unknown integrator 'verlet9'"),
        (["--preset", "kepler", "--forces", "magic"], "unknown force method 'magic'"),
        (["--preset", "kepler", "--dtype", "float16"], "unknown dtype 'float16'"),
        (["--preset", "kepler", "--steps", "10", "--t-end", "1"], "at most one of --t-end and --steps"),
        (["--preset", "kepler", "--steps", "0"], "--steps must be a positive integer"),
        (["--preset", "kepler", "--save-every", "0"], "--save-every must be a positive integer"),
        (["--preset", "kepler", "--t-end=-2"], "--t-end must be a positive finite number"),
        (["--preset", "kepler", "--softening=-1"], "softening must be >= 0"),
        (["--preset", "kepler", "--G", "0"], "G must be positive"),
        (["--preset", "kepler", "--n", "10"], "--n applies to scalable presets only"),
        (["--preset", "plummer", "--n", "1"], "number of bodies must be at least 2"),
        (["--preset", "kepler", "--out", "/nonexistent/dir/x.npz"], "directory '/nonexistent/dir' does not exist"),
        (["--preset", "kepler", "--out", "{dir_npz}"], "it is a directory"),
        (["--preset", "kepler", "--out", "x.txt"], "--out must name a .npz file"),
        ([], "give exactly one of --preset NAME or --ic FILE.csv"),
        (["--preset", "kepler", "--ic", "{empty}"], "give exactly one of --preset NAME or --ic FILE.csv"),
        (["--ic", "{one_body}", "--units", "parsecs"], "unknown unit system 'parsecs'"),
    ],
)
def test_bad_input_one_line_error(capsys, tmp_path, argv, message):
    files = {
        "empty": _write(tmp_path, ""),
        "dir_npz": str(tmp_path / "dir.npz"),
    }
    (tmp_path / "dir.npz").mkdir()
    contents = {
        "header_only": HEADER,
        "bad_header": "mass,x,y,z,vx,vy,vz\n" + GOOD_ROW,
        "not_number": HEADER + GOOD_ROW + "1,abc,0,0,0,0,0\n",
        "short_row": HEADER + GOOD_ROW + "1,2,3\n",
        "nan": HEADER + GOOD_ROW + "1,1,0,0,nan,0,0\n",
        "inf": HEADER + "1,0,inf,0,0,0,0\n" + GOOD_ROW,
        "negative_mass": HEADER + GOOD_ROW + "-1,1,0,0,0,0,0\n",
        "one_body": HEADER + GOOD_ROW,
    }
    for name, text in contents.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text)
        files[name] = str(path)
    argv = [arg.format(**files) for arg in argv]
    if "--ic" in argv and "--dt" not in argv:
        argv += ["--dt", "0.01", "--steps", "5"]
    code, stdout, err = run_cli(capsys, "run", *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("nbody run: error: ")
    assert message in err, err
    assert "Traceback" not in err and stdout == ""


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["run", "--preset", "kepler", "--dt", "abc"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err == "nbody run: error: argument --dt: invalid float value: 'abc'\n"


NBODY = str(Path(sys.executable).with_name("nbody"))  # the installed console script


def test_console_script_subprocess_no_traceback(tmp_path):
    # The real entry point, end to end: success writes the file, a bad CSV gives one line.
    bad = tmp_path / "bad.csv"
    bad.write_text("m,x,y,z,vx,vy,vz\n1,0,0,0,0,0,0\n0,1,0,0,0,0,0\n")
    result = subprocess.run(
        [NBODY, "run", "--ic", str(bad), "--dt", "0.1", "--steps", "3"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == "nbody run: error: mass must be positive, body 1 has mass 0.0\n"
    out = tmp_path / "ok.npz"
    result = subprocess.run(
        [NBODY, "run", "--preset", "kepler", "--steps", "10",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(str(np.load(out)["metadata"]))["num_steps"] == 10
    assert not list(tmp_path.glob(".ok.npz.*"))  # atomic write leaves no temporary behind


@pytest.mark.slow  # the adaptive run to t = 70: ~10 s
def test_pythagorean_with_its_own_defaults_is_right(capsys, tmp_path):
    """issue 12 point 1: `nbody run --preset pythagorean` (leapfrog, dt = 1e-5) ended with a
    relative energy error of 5e2 and exit 0; the preset's default is now the adaptive IAS15."""
    out = tmp_path / "p.npz"
    code, stdout, err = run_cli(capsys, "run", "--preset", "pythagorean", "--max-energy-error", "1e-8",
                                "--out", str(out))
    assert code == 0, err
    # No warning with the preset's defaults; the adaptive summary counts its steps (issue 12
    # point 13: it printed "dt=1e-05 x 7000000 steps").
    assert "warning" not in err and "accepted +" in stdout and "7000000" not in stdout
    arrays, metadata = load_npz(out)
    assert metadata["integrator"] == "ias15" and metadata["t_end"] == 70.0 and arrays["t"][-1] == 70.0
    assert metadata["energy_error_warning"] is False
    # IAS15 (the preset's default since it passed issue 12's 3e-11): measured ~1e-12 over
    # every step (tests/nbody_core/test_ias15.py states the bound).
    assert metadata["max_relative_energy_error"] < 3e-11


def test_readme_ic_example_runs(capsys, tmp_path, monkeypatch):
    """docs/cli.md's `nbody run --ic example:bodies --t-end 10 ...` example, from a directory
    that is not the checkout: the example ships in the package and carries its units."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "run", "--ic", "example:bodies", "--t-end", "10", "--dt", "1e-3",
                           "--out", "run.npz")
    assert code == 0, err
    arrays, metadata = load_npz(tmp_path / "run.npz")
    assert arrays["position"].shape[1] == 5 and metadata["unit_system"] == "au_msun_yr"
    # Leapfrog at dt = 1e-3 yr on Mercury's orbit (t_dyn = 0.038 yr): (dt / t_dyn)^2 = 7e-4
    # of Mercury's orbital energy, which is 6 % of these five bodies' total (no giant planets
    # here): 4e-5. Measured 1.1e-5.
    assert metadata["max_relative_energy_error"] < 4e-5
    assert metadata["command"][:4] == ["nbody", "run", "--ic", "example:bodies"] and metadata["created_utc"]
    # assets/bodies.csv (a link in the checkout) is the same file.
    assets = Path(__file__).resolve().parents[3] / "assets" / "bodies.csv"
    assert assets.read_bytes() == nb.example_initial_conditions("bodies")[0].read_bytes()


@pytest.mark.parametrize(("argv", "message"), [
    (["--ic", "example:nope", "--steps", "1", "--dt", "1e-3"], "unknown example 'example:nope'; the package ships example:bodies"),
    (["--ic", "example:bodies", "--units", "si", "--steps", "1", "--dt", "1e-3"],
     "--ic example:bodies is in au_msun_yr, not si; leave out --units"),
])
def test_bad_example_one_line(capsys, argv, message):
    code, _, err = run_cli(capsys, "run", *argv)
    assert code == 2 and err.strip() == f"nbody run: error: {message}"


def test_run_without_out_prints_its_summary_and_how_to_save(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run_cli(capsys, "run", "--preset", "figure_eight", "--steps", "100", "--dt", "1e-3")
    assert code == 0 and "relative energy error" in stdout
    assert err.strip() == ("nbody run: nothing saved; add --out run.npz to save the trajectory "
                           "(t, position, velocity, mass, energy and metadata)")
    assert list(tmp_path.iterdir()) == []


def test_energy_error_over_every_step_warns_flags_and_can_fail(capsys, tmp_path):
    # Issue 12 point 1: leapfrog at dt = 1e-3 cannot follow the Pythagorean encounters.
    out = tmp_path / "p.npz"
    argv = ("run", "--preset", "pythagorean", "--integrator", "leapfrog", "--dt", "1e-3", "--out", str(out))
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0
    assert "relative energy error reached" in err and "above 1%" in err
    _, metadata = load_npz(out)
    assert metadata["energy_error_warning"] is True and metadata["max_relative_energy_error_over"] == "every step"
    code, _, err = run_cli(capsys, *argv, "--max-energy-error", "0.01")
    assert code == 3 and "exceeds --max-energy-error 0.01 (exit 3)" in err
    assert out.exists()  # written before the non-zero exit


def test_max_error_is_over_every_step_not_the_snapshots(capsys, tmp_path):
    # Issue 12 point 6: the reported maximum does not depend on the save cadence.
    errors = []
    for save_every in ("1", "1000"):
        out = tmp_path / f"f{save_every}.npz"
        code, _, err = run_cli(capsys, "run", "--preset", "figure_eight", "--integrator", "yoshida4",
                               "--dt", "0.01", "--save-every", save_every, "--out", str(out))
        assert code == 0, err
        errors.append(load_npz(out)[1]["max_relative_energy_error"])
    assert errors[0] == errors[1]


def test_end_time_exact_after_ten_periods(capsys, tmp_path):
    # Issue 12 point 5: --t-end 10T lands exactly on 10T.
    out = tmp_path / "k.npz"
    t_end = 10 * nb.kepler_period(a=1.0, total_mass=2.0)
    code, _, err = run_cli(capsys, "run", "--preset", "kepler", "--t-end", repr(t_end), "--out", str(out))
    assert code == 0, err
    assert load_npz(out)[0]["t"][-1] == t_end


def test_new_integrator_and_force_records_are_cli_choices_and_app_options(capsys, request, tmp_path):
    # Adding an integrator or a force method is adding one record: the CLI and the
    # dashboard read the registries.
    from nbody_explorer.state.ensembles import EnsemblesState, integrator_color
    from nbody_explorer.state.simulate import SimulationState
    from nbody_core.physics.forces import FORCE_METHODS, ForceMethod, register_force_method
    from nbody_core.integrate.integrators import INTEGRATORS, register_integrator

    record = register_integrator(INTEGRATORS["leapfrog"]._replace(name="leapfrog_copy", description="a copy"))
    request.addfinalizer(lambda: INTEGRATORS.unregister("leapfrog_copy"))
    register_force_method(ForceMethod("analytic_copy", "a copy, for this test", FORCE_METHODS["analytic"].kernel))
    request.addfinalizer(lambda: FORCE_METHODS.unregister("analytic_copy"))
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = capsys.readouterr().out
    assert "leapfrog_copy" in help_text and "analytic_copy" in help_text
    out = tmp_path / "k.npz"
    code, _, err = run_cli(capsys, "run", "--preset", "kepler", "--integrator", "leapfrog_copy",
                           "--forces", "analytic_copy", "--steps", "10", "--out", str(out))
    assert code == 0, err
    metadata = load_npz(out)[1]
    assert metadata["integrator"] == "leapfrog_copy" and metadata["forces"] == "analytic_copy"
    state = SimulationState()
    assert "leapfrog_copy" in state.param.integrator.objects and "analytic_copy" in state.param.forces.objects
    assert "leapfrog_copy" in EnsemblesState().param.integrators.objects
    assert integrator_color("leapfrog_copy") == record.color
