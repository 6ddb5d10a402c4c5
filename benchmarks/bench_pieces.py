"""Wall time of the pieces a live frame is cut into, at the Simulate tab's caps (issue 26).

A frame runs in compiled calls ("pieces") of about ``PIECE_S`` (app/state/run_cost.py), the
steps of each chosen from the measured time of a step, with the stop check and the
scheduler's turn between them. This runs one frame of each heavy setting the tab allows
through ``SimulationState.step_frame`` (the app's own path) and records every piece's steps
and milliseconds; settings the tab refuses (their one step alone is too long, or the frame is
over the per-action budget) are timed at one piece of one step, to show why.

    python benchmarks/bench_pieces.py

Writes benchmarks/results/pieces.json and pieces.md with the load average.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import jax  # noqa: E402

import nbody_core as nb  # noqa: E402
from nbody_explorer.state import run_cost  # noqa: E402
from nbody_explorer.state.simulate import SimulationState  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results"


def largest(integrator: str) -> int:
    return run_cost._largest_bodies(run_cost.MAX_STEP_S, run_cost.FORCE_EVALUATIONS[integrator])


def allowed_settings() -> list[dict]:
    per_frame = int(run_cost.LIMITS.max_click_cpu_seconds / run_cost.step_seconds("yoshida4", 2000))
    return [
        dict(label=f"yoshida4, N = 2000, {per_frame} steps/frame (the most the budget allows)",
             integrator="yoshida4", num_bodies=2000, dt=1e-3, steps_per_frame=per_frame),
        dict(label=f"dopri8, N = {largest('dopri8')} (largest allowed), dt = 1, 200 steps/frame",
             integrator="dopri8", num_bodies=largest("dopri8"), dt=1.0, steps_per_frame=200),
        dict(label=f"ias15, N = {largest('ias15')} (largest allowed), dt = 1, 200 steps/frame",
             integrator="ias15", num_bodies=largest("ias15"), dt=1.0, steps_per_frame=200),
    ]


def run_allowed(setting: dict) -> dict:
    state = SimulationState(preset="plummer")
    state.param.update(**{k: v for k, v in setting.items() if k != "label"})
    start = time.perf_counter()
    state.prepare()
    prepare_s = time.perf_counter() - start
    first_k = state._chunk_steps
    start = time.perf_counter()
    state.step_frame()
    frame_s = time.perf_counter() - start
    pieces = state.last_frame_pieces
    ms = [1e3 * seconds for _, seconds in pieces]
    return dict(setting=setting["label"], prepare_s=round(prepare_s, 2), first_steps_per_piece=first_k,
                pieces=len(pieces), steps=[steps for steps, _ in pieces], piece_ms_median=round(statistics.median(ms), 1),
                piece_ms_max=round(max(ms), 1), frame_s=round(frame_s, 2),
                fault=None if state.fault is None else state.fault.message)


def run_refused(integrator: str, num_bodies: int, steps: int) -> dict:
    """One piece of one step of a setting the tab refuses (after a compiling call)."""
    state = nb.plummer(jax.random.key(0), num_bodies)
    options = dict(num_steps=1, dt=1e-3) if integrator == "yoshida4" else dict(t_end=1.0, max_steps=1)
    nb.solve(state, integrator=integrator, final_only=True, **options)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        solution = nb.solve(state, integrator=integrator, final_only=True, **options)
        jax.block_until_ready(solution.trajectory.position)
        times.append(time.perf_counter() - start)
    step_ms = 1e3 * min(times)
    try:
        run_cost.check_frame_cost(integrator=integrator, adaptive=integrator != "yoshida4", num_bodies=num_bodies,
                                  steps=steps)
        refusal = None
    except ValueError as error:
        refusal = str(error)
    return dict(setting=f"{integrator}, N = {num_bodies}, {steps} steps/frame (refused)", step_ms=round(step_ms, 1),
                frame_s_estimate=round(step_ms * (steps if integrator == "yoshida4" else 1) / 1e3, 2), refusal=refusal)


def main() -> None:
    nb.enable_float64()
    load_before = os.getloadavg()
    allowed = [run_allowed(setting) for setting in allowed_settings()]
    refused = [run_refused("yoshida4", 2000, 200), run_refused("dopri8", 2000, 200), run_refused("ias15", 2000, 200)]
    load_after = os.getloadavg()
    meta = dict(piece_s=run_cost.PIECE_S, max_step_s=run_cost.MAX_STEP_S, load_before=load_before,
                load_after=load_after, cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                jax=jax.__version__, date=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pieces.json").write_text(json.dumps(dict(meta=meta, allowed=allowed, refused=refused), indent=2))
    lines = ["# Pieces of a live frame at the Simulate tab's caps (bench_pieces.py)", "",
             f"Target piece {run_cost.PIECE_S * 1e3:.0f} ms; an adaptive step over {run_cost.MAX_STEP_S} s "
             "(estimated) is refused. Float64, Plummer, one frame through SimulationState.step_frame.", "",
             "| setting | steps/piece (first) | pieces | piece ms median | piece ms max | frame s | ended |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for row in allowed:
        ended = "fault: step cap (budget)" if row["fault"] else "reached the frame's end"
        lines.append(f"| {row['setting']} | {row['first_steps_per_piece']} | {row['pieces']} | "
                     f"{row['piece_ms_median']} | {row['piece_ms_max']} | {row['frame_s']} | {ended} |")
    lines += ["", "Refused settings (one step measured; the tab says why before any work):", "",
              "| setting | one step ms | refusal |", "|---|---:|---|"]
    for row in refused:
        lines.append(f"| {row['setting']} | {row['step_ms']} | {row['refusal']} |")
    lines += ["", f"Load average {load_before[0]:.1f} before / {load_after[0]:.1f} after "
              f"({os.cpu_count()} cores, {meta['cpu']}); {meta['date']}; jax {jax.__version__}."]
    (RESULTS / "pieces.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
