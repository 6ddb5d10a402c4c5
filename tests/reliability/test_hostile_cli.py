"""Hostile input to the ``nbody`` CLI: one line on stderr naming the problem, non-zero exit,
never a traceback.

Most cases call ``nbody_core.cli.main(argv)`` in-process (the console script is exactly
``sys.exit(main())``), so the catalogue stays fast; a few run the real console script in a
subprocess to prove nothing else (numpy warnings, tracebacks) reaches stderr.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nbody_core.cli import main

HEADER = "m,x,y,z,vx,vy,vz\n"
FILES = {
    "empty.csv": b"",
    "header_only.csv": HEADER.encode(),
    "wrong_columns.csv": b"mass,px,py,pz,vx,vy,vz\n1,0,0,0,0,0,0\n1,1,0,0,0,0,0\n",
    "latin1.csv": HEADER.encode() + "1,0,0,0,0,0,0\n1,1,0,0,0,0,0 # caf\xe9\n".encode("latin-1"),
    "nan.csv": (HEADER + "1,0,0,0,0,0,0\n1,NaN,0,0,0,0,0\n").encode(),
    "inf.csv": (HEADER + "1,0,0,0,0,0,0\n1,0,0,0,inf,0,0\n").encode(),
    "negative_mass.csv": (HEADER + "1,0,0,0,0,0,0\n-3,1,0,0,0,0,0\n").encode(),
    "zero_mass.csv": (HEADER + "1,0,0,0,0,0,0\n0,1,0,0,0,0,0\n").encode(),
    "enormous_mass.csv": (HEADER + "1e200,0,0,0,0,0,0\n1,1,0,0,0,0,0\n").encode(),
    "one_body.csv": (HEADER + "1,0,0,0,0,0,0\n").encode(),
    "ragged.csv": (HEADER + "1,0,0,0,0,0,0\n1,1,0\n").encode(),
    "coincident.csv": (HEADER + "1,0,0,0,0,0,0\n1,0,0,0,0,0,0\n").encode(),
    "good.csv": (HEADER + "1,0,0,0,0,0.5,0\n1,1,0,0,0,-0.5,0\n").encode(),
    # 1e-320 is subnormal in float64: the energy underflows to 0 and its relative error is NaN.
    "subnormal_mass.csv": (HEADER + "1e-320,0,0,0,0,0.5,0\n1e-320,1,0,0,0,-0.5,0\n").encode(),
    "float32_subnormal_mass.csv": (HEADER + "1,0,0,0,0,0.5,0\n1e-40,1,0,0,0,-0.5,0\n").encode(),
    # One body past the presets' cap (initial_conditions.MAX_BODIES = 20 000), ~300 kB.
    "too_many_bodies.csv": (HEADER + "".join(f"1,{i},0,0,0,0,0\n" for i in range(20_001))).encode(),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    # Just over the 5 MB limit, refused before parsing.
    (tmp_path / "huge.csv").write_bytes(HEADER.encode() + b"1,0,0,0,0,0,0\n" * 360_000)
    (tmp_path / "a_directory.npz").mkdir()
    (tmp_path / "a_directory.csv").mkdir()
    os.mkfifo(tmp_path / "a_fifo.csv")  # opening it to read would block forever
    monkeypatch.chdir(tmp_path)
    return tmp_path


RUN = ["run", "--steps", "2"]
RUN_FIG8 = RUN + ["--preset", "figure_eight"]
IC = lambda name, *extra: ["run", "--ic", name, "--dt", "0.01", "--steps", "2", *extra]  # noqa: E731
ENSEMBLE = ["ensemble", "--preset", "plummer", "--n", "8", "--members", "4", "--steps", "10", "--quiet"]
INFER = ["infer", "--samples", "10", "--warmup", "10", "--chains", "2", "--progress", "off"]

CASES = [
    # -- presets, integrators, options
    ("unknown-command", ["evil"], r"invalid choice: 'evil'"),
    ("unknown-option", RUN_FIG8 + ["--evil"], r"unrecognized arguments: --evil"),
    ("preset-unknown", RUN + ["--preset", "evil"], r"unknown preset 'evil'"),
    ("preset-code-injection", RUN + ["--preset", "__import__('os')"], r"unknown preset"),
    ("integrator-unknown", RUN_FIG8 + ["--integrator", "evil"], r"unknown integrator 'evil'"),
    ("forces-unknown", RUN_FIG8 + ["--forces", "magic"], r"unknown force method 'magic'"),
    ("dtype-unknown", RUN_FIG8 + ["--dtype", "float16"], r"unknown dtype 'float16'"),
    ("units-unknown", IC("good.csv", "--units", "furlongs"), r"unknown unit system 'furlongs'"),
    ("source-both", RUN_FIG8 + ["--ic", "good.csv"], r"exactly one of --preset NAME or --ic"),
    ("source-neither", RUN, r"exactly one of --preset NAME or --ic"),
    # -- numbers
    ("dt-zero", RUN_FIG8 + ["--dt", "0"], r"dt must be a positive finite number, got 0\.0"),
    ("dt-negative", RUN_FIG8 + ["--dt", "-1"], r"dt must be a positive finite number, got -1\.0"),
    ("dt-nan", RUN_FIG8 + ["--dt", "nan"], r"dt must be a positive finite number, got nan"),
    ("dt-inf", RUN_FIG8 + ["--dt", "inf"], r"dt must be a positive finite number, got inf"),
    ("dt-not-a-number", RUN_FIG8 + ["--dt", "abc"], r"argument --dt: invalid float value: 'abc'"),
    ("softening-negative", RUN_FIG8 + ["--softening", "-0.1"], r"softening must be >= 0, got -0\.1"),
    ("G-zero", RUN_FIG8 + ["--G", "0"], r"G must be positive, got 0\.0"),
    ("steps-negative", ["run", "--preset", "figure_eight", "--steps", "-5"], r"--steps must be a positive integer, got -5"),
    ("steps-astronomical", ["run", "--preset", "figure_eight", "--steps", "99999999999999999999"], r"exceeds the limit of 2147483647"),
    ("t-end-over-tiny-dt", ["run", "--preset", "figure_eight", "--t-end", "1e10", "--dt", "1e-300"], r"t_end / dt = .* exceeds the limit"),
    ("t-end-and-steps", RUN_FIG8 + ["--t-end", "1"], r"at most one of --t-end and --steps"),
    ("ic-without-dt", ["run", "--ic", "good.csv", "--steps", "2"], r"--dt is required with --ic"),
    # -- body counts
    ("N0", RUN + ["--preset", "plummer", "--n", "0"], r"at least 2, got 0"),
    ("N1", RUN + ["--preset", "plummer", "--n", "1"], r"at least 2, got 1"),
    ("N-beyond-cap", RUN + ["--preset", "plummer", "--n", "10000000"], r"10000000 exceeds the cap of 20000"),
    ("N-for-fixed-preset", RUN_FIG8 + ["--n", "64"], r"--n applies to scalable presets only"),
    # -- CSV files
    ("csv-empty", IC("empty.csv"), r"CSV file is empty"),
    ("csv-header-only", IC("header_only.csv"), r"header but no bodies"),
    ("csv-wrong-columns", IC("wrong_columns.csv"), r"header must be exactly m,x,y,z,vx,vy,vz"),
    ("csv-non-utf8", IC("latin1.csv"), r"not UTF-8 text"),
    ("csv-nan", IC("nan.csv"), r"line 3: x is not finite"),
    ("csv-inf", IC("inf.csv"), r"line 3: vx is not finite"),
    ("csv-negative-mass", IC("negative_mass.csv"), r"mass must be positive, body 1 has mass -3\.0"),
    ("csv-zero-mass", IC("zero_mass.csv"), r"mass must be positive, body 1 has mass 0\.0"),
    ("csv-enormous-mass", IC("enormous_mass.csv"), r"mass of body 0 \(1e\+200\) is too large for float64"),
    ("csv-one-body", IC("one_body.csv"), r"at least 2 bodies, got 1"),
    ("csv-ragged-row", IC("ragged.csv"), r"line 3: expected 7 values, got 3"),
    ("csv-huge", IC("huge.csv"), r"bytes; the limit is 5000000"),
    ("csv-missing", IC("missing.csv"), r"'missing.csv' does not exist"),
    ("csv-is-a-directory", IC("a_directory.csv"), r"'a_directory.csv' is not a regular file \(a directory\)"),
    ("csv-is-a-fifo", IC("a_fifo.csv"), r"'a_fifo.csv' is not a regular file \(a FIFO, socket or device\)"),
    ("csv-is-dev-zero", IC("/dev/zero"), r"'/dev/zero' is not a regular file \(a FIFO, socket or device\)"),
    ("csv-subnormal-mass", IC("subnormal_mass.csv"), r"mass of body 0 \(1e-320\) is below the smallest normal float64"),
    ("csv-subnormal-mass-float32", IC("float32_subnormal_mass.csv", "--dtype", "float32"),
     r"mass of body 1 \(1e-40\) is below the smallest normal float32 .* or use --dtype float64"),
    ("csv-over-body-cap", IC("too_many_bodies.csv"), r"CSV file has 20001 bodies; the limit is 20000"),
    # -- seeds: jax.random.key keeps 32 bits; 2**63 used to be an OverflowError traceback
    ("run-seed-2-63", RUN + ["--preset", "plummer", "--n", "8", "--seed", "9223372036854775808"],
     r"argument --seed: must be an integer in \[0, 4294967295\], got 9223372036854775808"),
    ("run-seed-2-32", RUN + ["--preset", "plummer", "--n", "8", "--seed", "4294967296"], r"argument --seed: must be an integer"),
    ("run-seed-negative", RUN + ["--preset", "plummer", "--n", "8", "--seed=-1"], r"argument --seed: must be an integer"),
    ("run-seed-not-a-number", RUN + ["--preset", "plummer", "--n", "8", "--seed", "1e3"], r"argument --seed: must be an integer"),
    # -- outputs
    ("out-missing-directory", RUN_FIG8 + ["--out", "no/such/dir/x.npz"], r"directory 'no/such/dir' does not exist"),
    ("out-is-a-directory", RUN_FIG8 + ["--out", "a_directory.npz"], r"'a_directory.npz': it is a directory"),
    ("out-unwritable", RUN_FIG8 + ["--out", "/proc/x.npz"], r"cannot write '/proc/x\.npz'"),
    ("out-wrong-suffix", RUN_FIG8 + ["--out", "x.txt"], r"--out must name a \.npz file"),
    # -- ensembles and sweeps
    ("ensemble-sweep-unknown", ENSEMBLE + ["--out", "e.npz", "--sweep", "G=1:2"], r"unknown sweep parameter 'G'"),
    ("ensemble-sweep-empty-range", ENSEMBLE + ["--out", "e.npz", "--sweep", "softening=0.1:0.001"], r"empty range"),
    ("ensemble-sweep-log-zero", ENSEMBLE + ["--out", "e.npz", "--sweep", "softening=0:0.1:log"], r"log range needs low > 0"),
    ("ensemble-sweep-malformed", ENSEMBLE + ["--out", "e.npz", "--sweep", "softening"], r"must look like NAME=LOW:HIGH"),
    ("ensemble-sweep-negative-dt", ENSEMBLE + ["--out", "e.npz", "--sweep", "dt=-1:1"], r"dt must be positive"),
    ("ensemble-sweep-twice", ENSEMBLE + ["--out", "e.npz", "--sweep", "dt=1e-3:1e-2", "--sweep", "dt=1e-3:2e-2"], r"swept twice"),
    ("ensemble-members-zero", ENSEMBLE + ["--out", "e.npz", "--members", "0"], r"num_members must be at least 1, got 0"),
    ("ensemble-members-beyond-cap", ENSEMBLE + ["--out", "e.npz", "--members", "1000000000"], r"num_members 1000000000 exceeds the cap"),
    ("ensemble-N1", ENSEMBLE + ["--out", "e.npz", "--n", "1"], r"num_bodies must be an integer >= 2, got 1"),
    ("ensemble-preset-unknown", ENSEMBLE + ["--out", "e.npz", "--preset", "evil"], r"unknown preset 'evil'"),
    ("ensemble-out-missing-directory", ENSEMBLE + ["--out", "no/dir/e.npz"], r"directory 'no/dir' does not exist"),
    # -- inference
    ("infer-problem-unknown", INFER + ["--out", "s.nc", "--problem", "evil"], r"argument --problem: invalid choice: 'evil'"),
    ("infer-noise-negative", INFER + ["--out", "s.nc", "--noise", "-1"], r"noise must be a positive"),
    ("infer-chains-zero", INFER + ["--out", "s.nc", "--chains", "0"], r"num_chains must be an integer >= 1, got 0"),
    ("infer-samples-negative", INFER + ["--out", "s.nc", "--samples", "-1"], r"num_samples must be an integer >= 1, got -1"),
    ("infer-out-suffix", INFER + ["--out", "s.txt"], r"--out must end in \.nc or \.npz"),
    # -- nbody serve (--dry-run: checked, printed, nothing served)
    ("serve-origin-star", ["serve", "--allow-websocket-origin", "*", "--dry-run"], r"'\*' would let any web page"),
    ("serve-origin-url", ["serve", "--allow-websocket-origin", "http://x/", "--dry-run"], r"must be HOST or HOST:PORT"),
    ("serve-port-0", ["serve", "--port", "0", "--dry-run"], r"--port must be in \[1, 65535\], got 0"),
    ("serve-max-sessions-0", ["serve", "--max-sessions", "0", "--dry-run"], r"--max-sessions must be in \[1, 10000\], got 0"),
    ("serve-max-sessions-huge", ["serve", "--max-sessions", "100000", "--dry-run"], r"--max-sessions must be in \[1, 10000\], got 100000"),
    ("serve-per-address-negative", ["serve", "--max-sessions-per-address", "-1", "--dry-run"],
     r"--max-sessions-per-address must be in \[0, 10000\] \(0: no per-address limit\), got -1"),
    ("serve-disconnect-grace-nan", ["serve", "--disconnect-grace", "nan", "--dry-run"],
     r"--disconnect-grace must be in \[0, 600\] seconds, got nan"),
    ("serve-connect-timeout-0", ["serve", "--connect-timeout", "0", "--dry-run"],
     r"--connect-timeout must be in \[1, 600\] seconds, got 0"),
    ("infer-seed-2-63", INFER + ["--out", "s.nc", "--seed", "9223372036854775808"],
     r"argument --seed: must be an integer in \[0, 4294967295\], got 9223372036854775808"),
    ("infer-out-missing-directory", INFER + ["--out", "no/dir/s.nc"], r"directory 'no/dir' does not exist"),
]


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one line on stderr, got {lines!r}"
    return lines[0]


@pytest.mark.parametrize(("argv", "message"), [pytest.param(a, m, id=i) for i, a, m in CASES])
def test_bad_input_is_one_line_and_non_zero_exit(workdir, capsys, argv, message):
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse errors
        code = exit_.code
    captured = capsys.readouterr()
    assert code not in (0, None)
    line = _error_line(captured.err)
    assert re.match(r"nbody( \w+)?: error: ", line), line
    assert re.search(message, line), line
    assert "Traceback" not in captured.err + captured.out
    assert not [p for p in workdir.glob("*.npz") if p.is_file()] and not list(workdir.glob(".*.tmp"))  # nothing written


def test_catalogue_ids_are_distinct():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))


def _console_script(argv, cwd):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from nbody_core.cli import main; sys.exit(main())", *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        # r = 0 with eps = 0: the energy is -inf at t = 0. A runtime flag, not a crash: exit 1,
        # one warning line naming the snapshot, no numpy warnings, and the file is still written.
        pytest.param(["run", "--ic", "coincident.csv", "--dt", "0.01", "--steps", "3", "--softening", "0", "--out", "c.npz"],
                     1, r"non-finite at snapshot 0 \(t=0\)", id="runtime-coincident-zero-softening"),
        # dt = 1e300 carries positions to ~1e300, whose squares overflow: snapshot 1.
        pytest.param(["run", "--preset", "figure_eight", "--dt", "1e300", "--steps", "3"],
                     1, r"non-finite at snapshot 1 .*smaller --dt", id="runtime-absurd-dt"),
    ],
)
def test_console_script_prints_one_line_and_no_traceback(workdir, argv, code, message):
    result = _console_script(argv, workdir)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(message, _error_line(result.stderr))
    if "--out" in argv:
        from nbody_core.io import load_npz

        arrays, metadata = load_npz(Path(workdir, argv[argv.index("--out") + 1]))
        assert metadata["first_nonfinite_snapshot"] == 0


# ------------------------------------------------------------------ issue 16, point 11


def test_presets_into_a_closed_pipe_exits_quietly(tmp_path):
    # `nbody presets | head -1`: the reader is gone before the writer writes (closed at once
    # here, so the test does not depend on who is faster). Used to be "error: [Errno 32]
    # Broken pipe" and exit 2.
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from nbody_core.cli import main; sys.exit(main())", "presets"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, stderr
    assert stderr == ""


def _umask(mask: int) -> int:
    return os.umask(mask)


def test_out_respects_umask_keeps_mode_and_writes_through_symlinks(workdir):
    argv = ["run", "--preset", "figure_eight", "--steps", "3", "--out"]
    previous = _umask(0o022)
    try:
        assert main(argv + ["new.npz"]) == 0
        assert Path("new.npz").stat().st_mode & 0o777 == 0o644  # 0666 minus the umask, not 0600
        os.chmod("new.npz", 0o640)
        assert main(argv + ["new.npz"]) == 0
        assert Path("new.npz").stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode
        os.symlink("new.npz", "link.npz")
        before = Path("new.npz").read_bytes()
        assert main(["run", "--preset", "figure_eight", "--steps", "5", "--out", "link.npz"]) == 0
        assert Path("link.npz").is_symlink() and os.readlink("link.npz") == "new.npz"  # the link stays
        assert Path("new.npz").read_bytes() != before  # ...and the file it names was replaced
        assert Path("new.npz").stat().st_mode & 0o777 == 0o640
        from nbody_core.io import load_npz

        assert load_npz("link.npz")[1]["num_steps"] == 5
    finally:
        _umask(previous)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_long_run(cwd, *extra):
    # Plummer N = 128 for 100 000 steps: ~10-40 s here, 20 chunks of ~0.5-2 s each.
    argv = ["run", "--preset", "plummer", "--n", "128", "--steps", "100000", *extra]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    # As from an interactive shell, SIGINT raises KeyboardInterrupt: a child inherits an ignored
    # SIGINT (as a background job of a script does), and Python then leaves it ignored. In CI both
    # tests below once saw the run finish untouched, on the browser tests' worker late in the run.
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from nbody_core.cli import main; sys.exit(main())")
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _signal_masks(pid: int) -> str:
    """The child's blocked / ignored / caught signal masks (for a failure message)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "(gone)"
    return " ".join(line.replace("\t", "") for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def _interrupt(process) -> float:
    import signal
    import time

    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    return time.monotonic() - started


def test_sigint_without_a_terminal_acts_within_a_second(workdir):
    # No terminal and no progress bar: the run used to be one jitted call that held the main
    # thread, so Ctrl-C acted only when the whole run ended (126 s in the report).
    process = _start_long_run(workdir, "--progress", "never")
    try:
        while _cpu_seconds(process.pid) < 8.0:  # imported, compiled and computing
            with pytest.raises(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)
        masks = _signal_masks(process.pid)
        elapsed = _interrupt(process)
    finally:
        process.kill()
    stderr = process.stderr.read()
    assert process.returncode == 130, f"{masks}\n{stderr}"
    assert elapsed < 1.0, f"SIGINT took {elapsed:.2f} s to act"
    assert "Traceback" not in stderr and "terminate called" not in stderr
    assert re.search(r"nbody run: interrupted", stderr)


def test_sigint_keeps_the_completed_snapshots(workdir):
    process = _start_long_run(workdir, "--progress", "always", "--out", "partial.npz")
    try:
        seen = ""
        while not re.search(r"\b([1-9][0-9]*)/100000\b", seen):  # tqdm: at least one chunk done
            character = process.stderr.read(1)
            assert character, f"run ended early: {seen[-500:]}"
            seen += character
        masks = _signal_masks(process.pid)
        elapsed = _interrupt(process)
    finally:
        process.kill()
    stderr = seen + process.stderr.read()
    assert process.returncode == 130, f"{masks}\n{stderr}"
    assert elapsed < 1.0, f"SIGINT took {elapsed:.2f} s to act"
    assert "Traceback" not in stderr and "terminate called" not in stderr
    assert re.search(r"interrupted at t=\S+ T; wrote the \d+ completed snapshots to partial\.npz", stderr)
    from nbody_core.io import load_npz

    arrays, metadata = load_npz(workdir / "partial.npz")
    assert metadata["interrupted"] is True
    times = arrays["t"]
    assert 1 < len(times) < 1001 and times[0] == 0.0 and (np.diff(times) > 0).all()
    assert metadata["t_end"] == pytest.approx(float(times[-1]))
    assert arrays["position"].shape == (len(times), 128, 3)
    # Leapfrog at dt = 1e-3 on a softened Plummer sphere: |dE/E| stays ~1e-5 (the benchmark tables, docs/benchmarks.md).
    energy = arrays["energy"]
    assert np.max(np.abs(energy - energy[0]) / abs(energy[0])) < 1e-3


def test_serve_refuses_a_short_secret_key_and_keeps_a_given_one(monkeypatch, capsys):
    import argparse

    from nbody_core.cli.serve import serve_arguments

    def namespace(**extra):
        return argparse.Namespace(port=5006, address="127.0.0.1", allow_websocket_origin=[], max_sessions=None, **extra)

    with pytest.raises(ValueError, match="at least 32 bytes"):
        serve_arguments(namespace(), environ={"NBODY_SECRET_KEY": "short"})
    _, env = serve_arguments(namespace(), environ={"NBODY_SECRET_KEY": "k" * 40})
    assert env["BOKEH_SECRET_KEY"] == "k" * 40 and env["BOKEH_SIGN_SESSIONS"] == "true"
    _, first = serve_arguments(namespace(), environ={})
    _, second = serve_arguments(namespace(), environ={})
    assert len(first["BOKEH_SECRET_KEY"]) >= 32 and first["BOKEH_SECRET_KEY"] != second["BOKEH_SECRET_KEY"]
    # --dry-run leaves this process's environment alone.
    monkeypatch.delenv("NBODY_MAX_SESSIONS", raising=False)
    assert main(["serve", "--max-sessions", "7", "--dry-run"]) == 0
    assert "NBODY_MAX_SESSIONS" not in os.environ
    # The printed line carries what nbody serve would set (issue 28 item 8: it runs as printed).
    assert capsys.readouterr().out.startswith("env NBODY_MAX_SESSIONS=7 BOKEH_SECRET_KEY=")
    # Behind a reverse proxy the client addresses come from its X- headers (per-address cap).
    assert main(["serve", "--use-xheaders", "--max-sessions-per-address", "0", "--dry-run"]) == 0
    assert " --use-xheaders " in capsys.readouterr().out and "NBODY_MAX_SESSIONS_PER_ADDRESS" not in os.environ
