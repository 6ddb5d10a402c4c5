"""Hostile input to the Python API: every bad value raises ValueError naming the problem.

Each case is ``(id, callable, regex)``: the callable must raise ``ValueError`` (``OSError``
for unwritable paths) whose message matches the regex, i.e. names the offending quantity.
Runtime trouble inside jitted code (coincident bodies with zero softening, an absurd dt) is
not an exception but a flag: :func:`nbody_core.first_nonfinite_index` reports the snapshot.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nbody_core as nb
from nbody_explorer import limits
from nbody_core import ensembles, io
from nbody_core.infer import inference
from nbody_core.integrate.options import MAX_STEPS

HEADER = "m,x,y,z,vx,vy,vz\n"
TWO_BODIES = HEADER + "1,0,0,0,0,0.5,0\n1,1,0,0,0,-0.5,0\n"
ZEROS = np.zeros((2, 3))
APART = np.array([[0.0, 0, 0], [1.0, 0, 0]])


def _state(position=APART, velocity=ZEROS, mass=(1.0, 1.0), **kwargs):
    return nb.make_state(position, velocity, mass, **kwargs)


FIG8 = nb.figure_eight()
KEY = jax.random.key(0)


def _simulate(**options):
    return nb.simulate(FIG8, **{"dt": 1e-3, "num_steps": 3, **options})


# ---------------------------------------------------------------------------- catalogue
STATE_CASES = [
    ("state-N0", lambda: _state(np.zeros((0, 3)), np.zeros((0, 3)), []), r"at least 2 bodies, got 0"),
    ("state-N1", lambda: _state(np.zeros((1, 3)), np.zeros((1, 3)), [1.0]), r"at least 2 bodies, got 1"),
    ("state-nan-position", lambda: _state(np.array([[0, np.nan, 0], [1, 0, 0]])), r"position.*non-finite.*body 0"),
    ("state-inf-velocity", lambda: _state(velocity=np.array([[0, 0, 0], [0, np.inf, 0]])), r"velocity.*non-finite.*body 1"),
    ("state-nan-mass", lambda: _state(mass=[np.nan, 1.0]), r"mass.*non-finite.*body 0"),
    ("state-negative-mass", lambda: _state(mass=[1.0, -2.0]), r"mass must be positive, body 1 has mass -2\.0"),
    ("state-zero-mass", lambda: _state(mass=[0.0, 1.0]), r"mass must be positive, body 0 has mass 0\.0"),
    ("state-enormous-mass-f64", lambda: _state(mass=[1e200, 1.0]), r"mass of body 0.*too large for float64"),
    ("state-enormous-mass-f32", lambda: _state(mass=[1e30, 1.0], dtype=jnp.float32), r"mass of body 0.*too large for float32"),
    ("state-enormous-position", lambda: _state(np.array([[0, 0, 0], [1e300, 0, 0]])), r"position of body 1.*too large"),
    ("state-wrong-columns", lambda: _state(np.zeros((3, 4)), np.zeros((3, 4)), np.ones(3)), r"position must have shape \[n, 3\]"),
    ("state-velocity-shape", lambda: _state(velocity=np.zeros((3, 3))), r"velocity shape \(3, 3\) does not match"),
    ("state-mass-shape", lambda: _state(mass=[1.0, 1.0, 1.0]), r"mass must have shape \[2\]"),
]

CSV_CASES = [
    ("csv-empty-bytes", lambda: io.parse_initial_conditions_csv(b""), r"CSV file is empty"),
    ("csv-only-comments", lambda: io.parse_initial_conditions_csv("# nothing\n\n"), r"CSV file is empty"),
    ("csv-header-only", lambda: io.parse_initial_conditions_csv(HEADER), r"header but no bodies"),
    ("csv-wrong-column-names", lambda: io.parse_initial_conditions_csv("mass,x,y,z,vx,vy,vz\n1,0,0,0,0,0,0\n"),
     r"header must be exactly m,x,y,z,vx,vy,vz.*missing \['m'\].*unexpected \['mass'\]"),
    ("csv-missing-column", lambda: io.parse_initial_conditions_csv("m,x,y,z,vx,vy\n1,0,0,0,0,0\n"), r"missing \['vz'\]"),
    ("csv-non-utf8", lambda: io.parse_initial_conditions_csv(b"m,x,y,z,vx,vy,vz\n\xff\xfe\xfa,0,0,0,0,0,0\n"), r"not UTF-8 text \(byte 17\)"),
    ("csv-utf16-bom", lambda: io.parse_initial_conditions_csv(TWO_BODIES.encode("utf-16")), r"not UTF-8"),
    ("csv-nan", lambda: io.parse_initial_conditions_csv(HEADER + "1,nan,0,0,0,0,0\n1,1,0,0,0,0,0\n"), r"line 2: x is not finite"),
    ("csv-inf-overflow", lambda: io.parse_initial_conditions_csv(HEADER + "1,0,0,0,0,0,0\n1,1e400,0,0,0,0,0\n"), r"line 3: x is not finite \(inf\)"),
    ("csv-not-a-number", lambda: io.parse_initial_conditions_csv(HEADER + "1,0,0,0,0,abc,0\n1,1,0,0,0,0,0\n"), r"line 2: vy value 'abc' is not a number"),
    ("csv-nul-byte", lambda: io.parse_initial_conditions_csv(b"m,x,y,z,vx,vy,vz\n1,0\x00,0,0,0,0,0\n1,1,0,0,0,0,0\n"), r"line 2: x value .* is not a number"),
    ("csv-short-row", lambda: io.parse_initial_conditions_csv(HEADER + "1,0,0\n1,1,0,0,0,0,0\n"), r"line 2: expected 7 values, got 3"),
    ("csv-semicolons", lambda: io.parse_initial_conditions_csv("m;x;y;z;vx;vy;vz\n1;0;0;0;0;0;0\n"), r"header must be exactly"),
    ("csv-one-body", lambda: io.parse_initial_conditions_csv(HEADER + "1,0,0,0,0,0,0\n"), r"at least 2 bodies, got 1"),
    ("csv-negative-mass", lambda: io.parse_initial_conditions_csv(HEADER + "-1,0,0,0,0,0,0\n1,1,0,0,0,0,0\n"), r"mass must be positive, body 0"),
    ("csv-enormous-mass", lambda: io.parse_initial_conditions_csv(HEADER + "1e300,0,0,0,0,0,0\n1,1,0,0,0,0,0\n"), r"mass of body 0.*too large"),
    ("csv-too-many-bodies", lambda: io.parse_initial_conditions_csv(HEADER + "1,0,0,0,0,0,0\n" * 5, max_bodies=3), r"5 bodies; the limit is 3"),
    ("csv-huge-file", lambda: io.parse_initial_conditions_csv(b"m,x,y,z,vx,vy,vz\n" + b"1,0,0,0,0,0,0\n" * 400_000), r"bytes; the limit is 5000000"),
    ("csv-not-text", lambda: io.parse_initial_conditions_csv(12345), r"CSV data must be bytes or text, got int"),
    ("csv-missing-file", lambda: io.read_initial_conditions_csv("/nonexistent/ic.csv"), r"'/nonexistent/ic.csv' does not exist"),
]

RUN_CASES = [
    ("dt-zero", lambda: _simulate(dt=0.0), r"dt must be a positive finite number, got 0\.0"),
    ("dt-negative", lambda: _simulate(dt=-1.0), r"dt must be a positive finite number, got -1\.0"),
    ("dt-nan", lambda: _simulate(dt=float("nan")), r"dt must be a positive finite number, got nan"),
    ("dt-inf", lambda: _simulate(dt=math.inf), r"dt must be a positive finite number, got inf"),
    ("dt-text", lambda: _simulate(dt="abc"), r"dt must be a positive finite number, got 'abc'"),
    ("dt-missing", lambda: _simulate(dt=None), r"dt is required"),
    ("advance-dt-negative", lambda: nb.advance(FIG8, 3, dt=-0.1), r"dt must be a positive finite number"),
    ("steps-negative", lambda: _simulate(num_steps=-1), r"num_steps must be a non-negative integer, got -1"),
    ("steps-fractional", lambda: _simulate(num_steps=2.5), r"num_steps must be a non-negative integer, got 2\.5"),
    ("steps-beyond-int32", lambda: _simulate(num_steps=MAX_STEPS + 1), r"num_steps 2147483648 exceeds the limit"),
    ("save-every-zero", lambda: _simulate(save_every=0), r"save_every must be a positive integer, got 0"),
    ("softening-negative", lambda: _simulate(params=nb.PhysicsParams(softening=-0.1)), r"softening must be >= 0, got -0\.1"),
    ("softening-nan", lambda: _simulate(params=nb.PhysicsParams(softening=float("nan"))), r"softening must be finite"),
    ("G-zero", lambda: _simulate(params=nb.PhysicsParams(G=0.0)), r"G must be positive, got 0\.0"),
    ("G-inf", lambda: _simulate(params=nb.PhysicsParams(G=math.inf)), r"G must be finite"),
    ("screening-length-zero", lambda: _simulate(params=nb.PhysicsParams(screening_length=0.0)), r"screening_length must be positive"),
    ("integrator-unknown", lambda: _simulate(integrator="evil"), r"unknown integrator 'evil'; choose one of"),
    ("integrator-code-injection", lambda: _simulate(integrator="__import__('os').system('true')"), r"unknown integrator"),
    ("force-method-unknown", lambda: _simulate(forces="magic"), r"unknown force method 'magic'"),
    ("potential-unknown", lambda: _simulate(potential="lambda s: s", forces="autodiff"), r"unknown potential 'lambda s: s'"),
    ("potential-as-text-code", lambda: nb.pair_potential("lambda s, p: 1 / s"), r"pair_energy must be callable, got str"),
    ("analytic-forces-yukawa", lambda: _simulate(potential="yukawa", forces="analytic"), r"Newtonian gravity only"),
    ("t-end-zero", lambda: nb.steps_for_duration(0.0, 0.1), r"t_end must be a positive finite number, got 0\.0"),
    ("t-end-over-tiny-dt", lambda: nb.steps_for_duration(1e10, 1e-300), r"t_end / dt = inf steps exceeds the limit"),
]

PRESET_CASES = [
    ("preset-unknown", lambda: nb.get_preset("evil"), r"unknown preset 'evil'; choose one of \["),
    ("preset-not-a-string", lambda: nb.get_preset(None), r"unknown preset None"),
    ("preset-path-traversal", lambda: nb.get_preset("../../etc/passwd"), r"unknown preset '../../etc/passwd'"),
    ("plummer-N0", lambda: nb.plummer(KEY, 0), r"at least 2, got 0"),
    ("plummer-N1", lambda: nb.plummer(KEY, 1), r"at least 2, got 1"),
    ("plummer-N-beyond-cap", lambda: nb.plummer(KEY, 10_000_000), r"10000000 exceeds the cap of 20000"),
    ("plummer-N-fractional", lambda: nb.plummer(KEY, 2.5), r"must be an integer, got 2\.5"),
    ("kepler-unbound", lambda: nb.kepler(1.0, 1.0, a=1.0, e=1.0), r"eccentricity must satisfy 0 <= e < 1"),
    ("kepler-negative-axis", lambda: nb.kepler(1.0, 1.0, a=-1.0, e=0.1), r"semi-major axis a must be positive"),
    ("kepler-nan-mass", lambda: nb.kepler(float("nan"), 1.0, a=1.0, e=0.1), r"masses must be positive"),
    ("units-unknown", lambda: nb.convert(1.0, "length", "nbody", "furlongs"), r"unknown unit system 'furlongs'"),
]

SWEEP_CASES = [
    ("sweep-unknown-parameter", lambda: ensembles.parse_sweep("G=1:2"), r"unknown sweep parameter 'G'"),
    ("sweep-malformed", lambda: ensembles.parse_sweep("softening"), r"must look like NAME=LOW:HIGH"),
    ("sweep-empty-range", lambda: ensembles.parse_sweep("softening=0.1:0.001"), r"empty range: low 0\.1 must be below high 0\.001"),
    ("sweep-log-from-zero", lambda: ensembles.parse_sweep("softening=0:0.1:log"), r"log range needs low > 0"),
    ("sweep-not-a-number", lambda: ensembles.parse_sweep("dt=a:b"), r"is not a number"),
    ("sweep-one-point", lambda: ensembles.parse_sweep("dt=1e-3:1e-2:1"), r"at least 2 points"),
    ("sweep-negative-dt", lambda: ensembles.EnsembleSpec(sweeps=("dt=-1:1",)), r"dt must be positive"),
    ("sweep-eccentricity-unbound", lambda: ensembles.EnsembleSpec(system="kepler", sweeps=("eccentricity=0.5:1.5",)), r"eccentricity must satisfy 0 <= e < 1"),
    ("ensemble-zero-members", lambda: ensembles.EnsembleSpec(num_members=0), r"num_members must be at least 1, got 0"),
    ("ensemble-members-beyond-cap", lambda: ensembles.EnsembleSpec(num_members=10**9), r"num_members 1000000000 exceeds the cap"),
    ("ensemble-N1", lambda: ensembles.EnsembleSpec(num_bodies=1), r"num_bodies must be an integer >= 2, got 1"),
    ("ensemble-unknown-system", lambda: ensembles.EnsembleSpec(system="evil"), r"unknown preset 'evil'"),
    ("inference-unknown-problem", lambda: inference.make_problem("evil"), r"unknown problem 'evil'"),
    ("inference-negative-noise", lambda: inference.make_problem("triple", noise=-1.0), r"noise must be a positive"),
]

LIMIT_CASES = [
    ("limit-N-beyond-cap", lambda: limits.check_limit("max_bodies", 10_000_000), r"number of bodies 10000000 exceeds this server's cap.*NBODY_MAX_BODIES"),
    ("limit-N-zero", lambda: limits.check_limit("max_bodies", 0), r"number of bodies must be at least 1, got 0"),
    ("limit-N-nan", lambda: limits.check_limit("max_bodies", float("nan")), r"number of bodies must be an integer, got nan"),
    ("limit-members-beyond-cap", lambda: limits.check_limit("max_ensemble_members", 10**7), r"ensemble members 10000000 exceeds"),
    ("limit-hmc-samples-beyond-cap", lambda: limits.check_limit("max_hmc_samples", 10**8), r"HMC samples 100000000 exceeds"),
    ("limit-steps-per-frame-text", lambda: limits.check_limit("max_steps_per_frame", "ten"), r"steps per frame must be an integer, got 'ten'"),
    ("limit-env-not-integer", lambda: limits.limits_from_environment({"NBODY_MAX_BODIES": "lots"}), r"NBODY_MAX_BODIES='lots' must be a positive integer"),
    ("limit-env-zero", lambda: limits.limits_from_environment({"NBODY_MAX_HMC_CHAINS": "0"}), r"NBODY_MAX_HMC_CHAINS='0' must be at least 1"),
    ("limit-env-above-ceiling", lambda: limits.limits_from_environment({"NBODY_MAX_UPLOAD_BYTES": "10000000000"}), r"NBODY_MAX_UPLOAD_BYTES=10000000000 exceeds the hard ceiling"),
]

ALL_CASES = STATE_CASES + CSV_CASES + RUN_CASES + PRESET_CASES + SWEEP_CASES + LIMIT_CASES


@pytest.mark.parametrize(("call", "message"), [pytest.param(c, m, id=i) for i, c, m in ALL_CASES])
def test_bad_input_raises_value_error_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_catalogue_ids_are_distinct():
    ids = [case[0] for case in ALL_CASES]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------- files and output paths
def test_save_npz_to_missing_directory_names_it(tmp_path):
    with pytest.raises(OSError, match=r"directory '.*/missing' does not exist"):
        io.save_npz(tmp_path / "missing" / "out.npz", {"a": np.zeros(2)})


def test_save_npz_over_a_directory_names_it(tmp_path):
    (tmp_path / "taken.npz").mkdir()
    with pytest.raises(OSError, match=r"taken\.npz': it is a directory"):
        io.save_npz(tmp_path / "taken.npz", {"a": np.zeros(2)})
    assert list((tmp_path / "taken.npz").iterdir()) == []  # no temp file left inside or beside


def test_save_npz_unwritable_location_names_the_target_not_a_temp_file():
    # /proc refuses file creation even for root; the message must name our path.
    with pytest.raises(OSError, match=r"cannot write '/proc/out\.npz'"):
        io.save_npz("/proc/out.npz", {"a": np.zeros(2)})


@pytest.mark.parametrize(
    "damage",
    [pytest.param(lambda b: b[: len(b) // 2], id="truncated-half"), pytest.param(lambda b: b"garbage", id="garbage"),
     pytest.param(lambda b: b"", id="empty")],
)
def test_load_npz_on_a_damaged_file_raises_value_error(tmp_path, damage):
    good = tmp_path / "good.npz"
    io.save_npz(good, {"position": np.arange(3000.0)}, {"seed": 1})
    bad = tmp_path / "bad.npz"
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(ValueError, match=r"bad\.npz' is not a readable npz file"):
        io.load_npz(bad)
    arrays, metadata = io.load_npz(good)  # the good file still loads
    assert metadata == {"seed": 1} and arrays["position"].shape == (3000,)


# ------------------------------------------------------------- runtime flags from jit code
COINCIDENT = _state(np.zeros((2, 3)), ZEROS, (1.0, 1.0))


def test_coincident_bodies_with_zero_softening_are_flagged_at_the_first_snapshot():
    # r = 0 and eps = 0: U = -G m m / 0 = -inf at t = 0 already.
    trajectory = nb.simulate(COINCIDENT, dt=1e-3, num_steps=4, params=nb.PhysicsParams(softening=0.0))
    assert nb.first_nonfinite_index(trajectory) == 0


def test_coincident_bodies_with_softening_stay_finite():
    # Control for the test above: eps > 0 makes the same configuration regular, so the
    # flag is not raised by the configuration itself.
    trajectory = nb.simulate(COINCIDENT, dt=1e-3, num_steps=4, params=nb.PhysicsParams(softening=0.1))
    assert nb.first_nonfinite_index(trajectory) is None


def test_absurd_dt_is_flagged_at_the_first_step():
    # dt = 1e300: the figure-eight velocities (~1) carry positions to ~1e300, whose squares
    # overflow float64 (max 1.8e308), so snapshot 1 is non-finite while snapshot 0 is fine.
    trajectory = nb.simulate(FIG8, dt=1e300, num_steps=3)
    assert nb.first_nonfinite_index(trajectory) == 1


def test_close_encounter_with_zero_softening_shows_as_an_energy_jump_at_free_fall_time():
    # Head-on collision from rest: two unit masses 1 apart meet at the free-fall time
    # t_ff = pi / 2 * sqrt(r0**3 / (2 G M)) = pi / 4 ~ 0.785 (M = 2). With eps = 0 the
    # fixed-step run stays finite but the energy is destroyed near t_ff (the bodies are
    # flung apart): the relative energy error is the flag, and it fires at t_ff, not before.
    trajectory = nb.simulate(_state(), dt=1e-3, num_steps=2000, save_every=10, params=nb.PhysicsParams(softening=0.0))
    assert nb.first_nonfinite_index(trajectory) is None
    energy = np.asarray(trajectory.energy)
    relative_error = np.abs(energy - energy[0]) / abs(energy[0])
    first_bad = int(np.argmax(relative_error > 1e-2))  # 1 % is the dashboard's warning level
    assert relative_error[first_bad] > 1e-2
    assert math.pi / 4 - 0.05 < float(trajectory.time[first_bad]) < math.pi / 4 + 0.01
    assert relative_error[-1] > 1.0  # not a blip: the run is ruined from there on
