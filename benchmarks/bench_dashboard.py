"""Painted frames per second of the Simulate tab in headless Chromium, new scene beside old.

Serves the app (``python -m panel serve app``) on a free loopback port, opens the Simulate
tab with URL settings per scenario, presses Play and counts, inside the page, the frames
the browser actually *paints*: on every animation frame a sampler draws the scene canvas
into a 48 x 36 copy, hashes its pixels and counts the changes. Messages that arrive but
are never painted do not count. The sampler is first calibrated on a canvas animated at the
display rate (it must read ~60/s). With ``--baseline-ref REF`` the same scenarios also run
against the app as it was at git ``REF`` (served from a temporary git worktree), so that
the old Bokeh scene and the new one are measured in the same run, on the same load.

    python benchmarks/bench_dashboard.py [--window 5] [--baseline-ref REF] [--quick]

Writes benchmarks/results/dashboard.json and dashboard.md. The machine is shared and
loaded: the load average at each measurement is recorded beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from screenshot import CHROMIUM_FLAGS, free_port, stop, wait_live  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results"
SCENARIOS = [
    # (label, URL query, goal painted frames/s)
    ("figure-eight, 10 steps/frame, float64", "?preset=figure_eight&steps=10&precision=float64&fps=60", 60),
    ("Plummer N=256, 10 steps/frame, float64", "?preset=plummer&n=256&steps=10&precision=float64&fps=60", 45),
    ("Plummer N=1000, 1 step/frame, float32", "?preset=plummer&n=1000&steps=1&precision=float32&fps=60", 30),
    ("Plummer N=5000, 1 step/frame, float32", "?preset=plummer&n=5000&steps=1&precision=float32&fps=60", 10),
]
MAX_BODIES = 5000  # the app's default cap is 2000 (app/limits.py): raised for the N = 5000 row

# Sampler: hash a downscaled copy of the scene canvas on every animation frame and count the
# changes. getCanvas: the new scene's canvas (window.nbodyScenes) or, for the old Bokeh
# scene, the largest canvas anywhere in the page (shadow roots included).
SAMPLER = """(mode) => {
  function allCanvases(root, out) {
    for (const el of root.querySelectorAll('*')) {
      if (el.tagName === 'CANVAS') out.push(el)
      if (el.shadowRoot) allCanvases(el.shadowRoot, out)
    }
    return out
  }
  function target() {
    if (mode === 'scene') {
      const scenes = window.nbodyScenes || {}
      const scene = scenes['simulate-scene'] || Object.values(scenes)[0]
      return scene ? scene.canvas : null
    }
    if (mode === 'calibration') return document.getElementById('calibration')
    let best = null, area = 0
    for (const c of allCanvases(document, [])) {
      const a = c.width * c.height
      if (a > area) { best = c; area = a }
    }
    return best
  }
  const small = document.createElement('canvas'); small.width = 48; small.height = 36
  const sctx = small.getContext('2d', {willReadFrequently: true})
  const s = {changes: [], frames: 0, last: -1, click: null}
  document.addEventListener('click', () => { if (s.click === null) s.click = performance.now() }, true)
  function tick(now) {
    s.frames++
    const c = target()
    if (c && c.width > 0 && c.height > 0) {
      sctx.drawImage(c, 0, 0, small.width, small.height)
      const d = sctx.getImageData(0, 0, small.width, small.height).data
      let h = 2166136261
      for (let k = 0; k < d.length; k++) { h ^= d[k]; h = Math.imul(h, 16777619) }
      h = h >>> 0
      if (h !== s.last) { s.changes.push(now); s.last = h }
    }
    requestAnimationFrame(tick)
  }
  requestAnimationFrame(tick)
  window.__sampler = s
  return true
}"""
CALIBRATION_PAGE = """<canvas id=calibration width=400 height=300></canvas><script>
const c = document.getElementById('calibration'), ctx = c.getContext('2d'); let k = 0;
function animate() { k++; ctx.fillStyle = `hsl(${(k * 7) % 360},70%,50%)`; ctx.fillRect(0, 0, 400, 300);
  ctx.fillStyle = '#fff'; ctx.fillRect((k * 5) % 400, 100, 20, 20); requestAnimationFrame(animate) }
requestAnimationFrame(animate);
</script>"""


def serve_checkout(root: Path, port: int, log_path: Path) -> subprocess.Popen:
    """``python -m panel serve app`` from checkout ``root`` (its own code on PYTHONPATH)."""
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"), "PYTHONPATH": str(root),
           "NBODY_MAX_BODIES": str(MAX_BODIES)}
    log = open(log_path, "wb")  # noqa: SIM115 - closed by the OS when the process ends
    return subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", "app", "--port", str(port), "--address", "127.0.0.1",
         "--allow-websocket-origin", f"127.0.0.1:{port}", "--liveness"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def _rate(page, window_s: float) -> tuple[float, int]:
    begin = page.evaluate("() => [performance.now(), window.__sampler.changes.length]")
    page.wait_for_timeout(int(window_s * 1000))
    end = page.evaluate("() => [performance.now(), window.__sampler.changes.length]")
    return (end[1] - begin[1]) / ((end[0] - begin[0]) / 1000), end[1] - begin[1]


def calibrate(browser, window_s: float) -> dict:
    """The sampler on a canvas repainted on every animation frame: should read ~60/s."""
    page = browser.new_page()
    page.set_content(CALIBRATION_PAGE)
    page.evaluate(SAMPLER, "calibration")
    page.wait_for_timeout(500)
    fps, _ = _rate(page, window_s)
    rafs = page.evaluate("() => window.__sampler.frames")
    page.close()
    return {"sampler_changes_per_s": round(fps, 1), "animation_frames_counted": rafs,
            "load_average_1min": round(os.getloadavg()[0], 2)}


def _open_ready(page, url: str) -> float:
    """Open ``url``, wait until the run is compiled ("paused"); return seconds taken."""
    start = time.perf_counter()
    page.goto(url, timeout=240_000)
    page.get_by_text("paused", exact=True).first.wait_for(timeout=240_000)
    return time.perf_counter() - start


def play_and_count(page, mode: str, window_s: float) -> dict:
    page.evaluate(SAMPLER, mode)
    page.wait_for_timeout(300)  # the sampler's first hash: the paused picture
    page.evaluate("() => { window.__sampler.click = null }")
    before = page.evaluate("() => window.__sampler.changes.length")
    page.get_by_role("button", name="▶ Play").click()
    page.wait_for_function("(n) => window.__sampler.changes.length > n + 1", arg=before, timeout=120_000)
    first_ms = page.evaluate("(n) => window.__sampler.changes[n] - window.__sampler.click", before)
    page.wait_for_timeout(1000)  # skip the first second (browser JIT, first status refreshes)
    load = os.getloadavg()[0]
    fps, counted = _rate(page, window_s)
    # The shadow root holds the pane's stylesheets first: keep the text after the last rule.
    status = page.locator(".nbody-status").first.evaluate("e => (e.shadowRoot || e).textContent").split("}")[-1]
    page.get_by_role("button", name="Pause").click()
    return {"painted_fps": round(fps, 2), "frames_counted": counted, "play_to_first_paint_ms": round(first_ms, 1),
            "load_average_1min": round(load, 2), "server_status": " ".join(status.split())}


def run_app(browser, base: str, mode: str, scenarios, window_s: float) -> list[dict]:
    rows = []
    for label, query, goal in scenarios:
        page = browser.new_page(viewport={"width": 1400, "height": 850})
        try:
            ready_s = _open_ready(page, f"{base}/app{query}")
            row = {"scenario": label, "query": query, "goal_fps": goal, "load_to_ready_s": round(ready_s, 2),
                   **play_and_count(page, mode, window_s)}
        except Exception as error:  # noqa: BLE001 - a row that failed is reported, not hidden
            row = {"scenario": label, "query": query, "goal_fps": goal, "error": f"{type(error).__name__}: {error}"[:300],
                   "load_average_1min": round(os.getloadavg()[0], 2)}
        finally:
            page.close()
        rows.append(row)
        print(mode, row, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=5.0, help="seconds of painted frames counted per scenario")
    parser.add_argument("--baseline-ref", default=None,
                        help="git ref of the app with the old Bokeh scene, measured in the same run")
    parser.add_argument("--quick", action="store_true", help="figure-eight only, 2 s windows (smoke test)")
    args = parser.parse_args(argv)
    scenarios = SCENARIOS[:1] if args.quick else SCENARIOS
    window = 2.0 if args.quick else args.window

    cache_dir = tempfile.mkdtemp(prefix="nbody-bench-jax-")
    os.environ["NBODY_JAX_CACHE_DIR"] = cache_dir
    work = Path(tempfile.mkdtemp(prefix="nbody-bench-dashboard-"))
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "window_s": window, "counting": "painted frames: canvas changes seen on requestAnimationFrame (48x36 hash)",
        "apps": {},
    }
    apps = [("new scene (OrbitScene, canvas in the browser)", REPO_ROOT, "scene")]
    if args.baseline_ref:
        baseline = work / "baseline"
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", str(baseline), args.baseline_ref],
                       check=True, capture_output=True)
        commit = subprocess.run(["git", "-C", str(baseline), "rev-parse", "--short", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
        apps.append((f"old Bokeh scene (git {commit})", baseline, "largest-canvas"))
    processes = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_FLAGS)
            results["calibration"] = calibrate(browser, 3.0)
            print("calibration", results["calibration"], flush=True)
            for name, root, mode in apps:
                port = free_port()
                process = serve_checkout(root, port, work / f"{mode}.log")
                processes.append(process)
                base = f"http://127.0.0.1:{port}"
                wait_live(base, process, timeout_s=180)
                results["apps"][name] = run_app(browser, base, mode, scenarios, window)
                stop(process)
            browser.close()
    finally:
        for process in processes:
            stop(process)
        if args.baseline_ref:
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(work / "baseline")],
                           capture_output=True)
        shutil.rmtree(cache_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "dashboard.md").write_text(markdown(results, args))
    print((RESULTS / "dashboard.md").read_text())
    return 0


def markdown(results: dict, args) -> str:
    calibration = results["calibration"]
    names = list(results["apps"])
    lines = [
        "# Dashboard: painted frames/s in headless Chromium",
        "",
        f"`python benchmarks/bench_dashboard.py --window {results['window_s']:g}"
        + (f" --baseline-ref {args.baseline_ref}`" if args.baseline_ref else "`")
        + f" on {results['machine']['cpus']} shared CPUs. Frames are counted as the browser paints them"
        " (the scene canvas hashed on every animation frame); the sampler read"
        f" {calibration['sampler_changes_per_s']}/s on a canvas animated at display rate (load"
        f" {calibration['load_average_1min']}). The server aims at 60 frames/s (`fps=60`). The machine is"
        " shared with other jobs: see the load average beside each figure; short windows.",
        "",
        "| scenario | goal | " + " | ".join(f"{name}: painted/s" for name in names) + " | load avg |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    for i, (label, _, goal) in enumerate(SCENARIOS[: len(results["apps"][names[0]])]):
        cells = []
        loads = []
        for name in names:
            row = results["apps"][name][i]
            cells.append("error" if "error" in row else f"{row['painted_fps']:.1f}")
            loads.append(f"{row['load_average_1min']:.1f}")
        lines.append(f"| {label} | >= {goal} | " + " | ".join(cells) + f" | {' / '.join(loads)} |")
    lines += ["", "| app | scenario | Play → first paint (ms) | load → ready (s) | status line while playing |",
              "|---|---|---|---|---|"]
    for name in names:
        for row in results["apps"][name]:
            if "error" in row:
                lines.append(f"| {name} | {row['scenario']} | - | - | {row['error']} |")
            else:
                lines.append(f"| {name} | {row['scenario']} | {row['play_to_first_paint_ms']:.0f} | {row['load_to_ready_s']:.1f}"
                             f" | {row['server_status'][:140]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
