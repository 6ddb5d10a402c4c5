"""Load test: many concurrent browser sessions playing the Simulate tab on one server.

Serves the real app (``python -m panel serve app``) on a free loopback port with short
session clean-up (``--check-unused-sessions`` / ``--unused-session-lifetime``), then:

1. records the server's RSS and thread count with no session (``cold``), and again after one
   warm-up session (which compiles) has closed and been destroyed (``warm`` baseline);
2. opens ``--sessions`` headless Chromium sessions (each its own browser context), each with
   its own URL settings (``preset=plummer&n=N&seed=i&dt=dt_i``), and presses Play in all;
3. for ``--duration`` seconds: every page timestamps each frame its orbit scene receives
   (``window.nbodyScenes['simulate-scene'].onFrame``) (frame intervals, p50/p95 per session); a thread times ``/liveness`` every 0.5 s
   (server responsiveness); another samples RSS and threads every second;
4. checks that every session kept its own settings (URL, status line, different bodies);
5. closes every session and follows RSS and threads until the server has destroyed them.

    python benchmarks/load_test.py [--sessions 20] [--duration 60] [--n 200]

``--mixed`` runs issue 16's mix instead: ``--heavy`` (2) sessions at today's caps
(Plummer N = 2000, Yoshida-4, 200 steps per frame) and ``--light`` (10) sessions playing
Plummer N = ``--n``; it reports ``/liveness`` p95 while they play, the time for one more new
page to be usable (Play button shown), the server CPU before and after the heavy tabs close
(and how long until it falls below 15 % of a core), and server RSS cold / warm / during /
after (after = once every session is destroyed and memory has been trimmed).

Writes benchmarks/results/load.json and load.md (``--output-stem`` changes the name; the
mixed mode writes load_mixed.*).
Loopback only. A shared 2-core machine is noisy: the load average is recorded beside
every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
]
SESSION_CHECK_MS = 1000  # how often the server looks for closed sessions
SESSION_LIFETIME_MS = 3000  # how long a closed session lingers before it is destroyed
PAGE_TIMEOUT_MS = 240_000

_HOOK = """() => {
  window.__frames = [];
  window.nbodyScenes['simulate-scene'].onFrame(() => window.__frames.push(performance.now()));
  return true;
}"""


# ----------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, *, log_path: Path, cache_dir: str) -> subprocess.Popen:
    """``python -m panel serve app`` on loopback with short session clean-up."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")  # noqa: SIM115 - closed by stop_server
    process = subprocess.Popen(
        [
            sys.executable, "-m", "panel", "serve", "app", "--port", str(port), "--address", "127.0.0.1",
            "--allow-websocket-origin", f"127.0.0.1:{port}", "--liveness", "--num-procs", "1",
            "--check-unused-sessions", str(SESSION_CHECK_MS), "--unused-session-lifetime", str(SESSION_LIFETIME_MS),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"), "NBODY_JAX_CACHE_DIR": cache_dir,
             "NBODY_MAX_SESSIONS_PER_ADDRESS": "0"},  # every browser session comes from loopback
        stdout=log, stderr=subprocess.STDOUT,
    )
    process._load_log = log  # type: ignore[attr-defined]
    return process


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
    process._load_log.close()  # type: ignore[attr-defined]


def liveness_latency(base: str, timeout_s: float = 10.0) -> float:
    """Seconds for one ``/liveness`` answer (inf if it failed)."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{base}/liveness", timeout=timeout_s) as response:
            response.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return float("inf")
    return time.perf_counter() - start


def wait_live(base: str, process: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"panel serve exited with code {process.returncode}")
        if liveness_latency(base, 2.0) != float("inf"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{base}/liveness did not answer within {timeout_s} s")


def process_sample(pid: int) -> dict:
    """RSS (MiB) and thread count of ``pid``, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return {"rss_mib": round(int(fields["VmRSS"].split()[0]) / 1024, 1), "threads": int(fields["Threads"])}


def thread_names(pid: int) -> dict[str, int]:
    """How many threads of ``pid`` carry each name (/proc/PID/task/*/comm)."""
    names: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        names[name] = names.get(name, 0) + 1
    return dict(sorted(names.items()))


class Sampler(threading.Thread):
    """Samples RSS/threads every ``period_s`` and ``/liveness`` latency every ``probe_s``."""

    def __init__(self, pid: int, base: str, *, period_s: float = 1.0, probe_s: float = 0.5):
        super().__init__(daemon=True, name="load-sampler")
        self.pid, self.base, self.period_s, self.probe_s = pid, base, period_s, probe_s
        self.samples: list[dict] = []
        self.latencies: list[tuple[float, float]] = []
        self.phase = "idle"
        self._halt = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        next_sample = 0.0
        while not self._halt.is_set():
            now = time.monotonic() - self.t0
            if now >= next_sample:
                try:
                    self.samples.append({"t": round(now, 2), "phase": self.phase, **process_sample(self.pid),
                                         "load_1min": round(os.getloadavg()[0], 2)})
                except (OSError, KeyError):
                    return
                next_sample = now + self.period_s
            self.latencies.append((now, liveness_latency(self.base), self.phase))
            self._halt.wait(self.probe_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=15)


def wait_for_threads(pid: int, *, at_most: int | None, timeout_s: float, settle_s: float = 3.0) -> tuple[dict, float]:
    """Wait until the thread count is ``<= at_most`` (or, with None, unchanged for
    ``settle_s``) once closed sessions had time to be destroyed. Returns (sample, seconds)."""
    start = time.monotonic()
    time.sleep((SESSION_CHECK_MS + SESSION_LIFETIME_MS) / 1000)
    last, stable_since = None, time.monotonic()
    while True:
        sample = process_sample(pid)
        if last is None or sample["threads"] != last["threads"]:
            stable_since = time.monotonic()
        last = sample
        elapsed = time.monotonic() - start
        if at_most is not None and sample["threads"] <= at_most:
            return sample, elapsed
        if at_most is None and time.monotonic() - stable_since >= settle_s:
            return sample, elapsed
        if elapsed > timeout_s:
            return sample, elapsed
        time.sleep(0.5)


# ----------------------------------------------------------------------------- sessions
def session_dt(index: int) -> float:
    """A distinct dt per session, distinct at the 3 significant digits the status shows."""
    return round(1e-3 * (1.0 + 0.05 * index), 8)


def session_query(index: int, n: int, steps: int) -> str:
    return "?" + urllib.parse.urlencode(
        {"preset": "plummer", "n": n, "seed": index, "dt": repr(session_dt(index)), "steps": steps}
    )


def open_session(browser, url: str):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(PAGE_TIMEOUT_MS)  # 20 pages on 2 shared cores answer slowly
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url, timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(
        "() => window.nbodyScenes && window.nbodyScenes['simulate-scene'] !== undefined", timeout=PAGE_TIMEOUT_MS)
    page.get_by_role("button", name="▶ Play").wait_for(timeout=PAGE_TIMEOUT_MS)
    page.evaluate(_HOOK)
    return context, page, time.perf_counter() - start


def status_text(page) -> str:
    text = page.locator(".nbody-status").first.evaluate("e => (e.shadowRoot || e).textContent")
    return " ".join(text.split())


def _safe_status(page) -> str:
    try:
        return status_text(page)
    except Exception as error:  # noqa: BLE001
        return f"unreadable ({type(error).__name__})"


def first_body_x(page) -> float:
    return page.evaluate("() => window.nbodyScenes['simulate-scene'].positions()[0][0]")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def frame_stats(timestamps_ms: list[float], skip_s: float = 1.0) -> dict:
    """Frame-interval p50/p95 (ms) and frames/s, skipping the first ``skip_s`` of frames."""
    if len(timestamps_ms) < 3:
        return {"frames": len(timestamps_ms), "p50_ms": None, "p95_ms": None, "max_ms": None, "fps": 0.0}
    start = timestamps_ms[0] + skip_s * 1000
    kept = [t for t in timestamps_ms if t >= start] or timestamps_ms
    intervals = [b - a for a, b in zip(kept, kept[1:])]
    span_s = (kept[-1] - kept[0]) / 1000 if len(kept) > 1 else float("nan")
    return {
        "frames": len(timestamps_ms),
        "p50_ms": round(percentile(intervals, 0.5), 1) if intervals else None,
        "p95_ms": round(percentile(intervals, 0.95), 1) if intervals else None,
        "max_ms": round(max(intervals), 1) if intervals else None,
        "fps": round((len(kept) - 1) / span_s, 2) if span_s and span_s > 0 else 0.0,
    }


def format_dt(value: float) -> str:
    return f"{value:.3g}"


def check_isolation(pages: list, n: int) -> dict:
    """Each session still shows its own dt (URL and status line), N, and its own bodies."""
    problems, first_x = [], []
    for index, page in enumerate(pages):
        try:
            _check_one(index, page, n, problems, first_x)
        except Exception as error:  # noqa: BLE001 - a starved page is a finding, not a crash
            problems.append(f"session {index}: could not be read ({type(error).__name__}: {str(error)[:120]})")
    if len(set(first_x)) != len(first_x):
        problems.append(f"two sessions show the same bodies (first x per session: {first_x})")
    return {"ok": not problems, "problems": problems}


def _check_one(index: int, page, n: int, problems: list, first_x: list) -> None:
    if True:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
        url_dt = float(query.get("dt", ["nan"])[0])
        if url_dt != session_dt(index):
            problems.append(f"session {index}: URL dt {url_dt} != {session_dt(index)}")
        status = status_text(page)
        if f"dt = {format_dt(session_dt(index))}," not in status:
            problems.append(f"session {index}: status shows {status!r}, expected dt = {format_dt(session_dt(index))}")
        if f"N = {n}" not in status:
            problems.append(f"session {index}: status shows {status!r}, expected N = {n}")
        first_x.append(first_body_x(page))


# ----------------------------------------------------------------------------- the test
def run_load_test(*, sessions: int, duration_s: float, n: int, steps: int = 1, log_dir: Path | None = None) -> dict:
    """Run the whole load test and return the results (see the module docstring)."""
    from playwright.sync_api import sync_playwright

    cache_dir = tempfile.mkdtemp(prefix="nbody-load-jax-")
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="nbody-load-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/app"
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "config": {"sessions": sessions, "duration_s": duration_s, "n": n, "steps_per_frame": steps,
                   "check_unused_sessions_ms": SESSION_CHECK_MS, "unused_session_lifetime_ms": SESSION_LIFETIME_MS},
    }
    process = start_server(port, log_path=log_dir / "load-server.log", cache_dir=cache_dir)
    sampler = None
    try:
        wait_live(base, process)
        time.sleep(1.0)
        results["cold"] = {**process_sample(process.pid), "thread_names": thread_names(process.pid)}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                # Warm-up: one session imports the app, compiles the N-body frame, then closes.
                context, page, warm_load_s = open_session(browser, url + session_query(0, n, steps))
                page.get_by_role("button", name="▶ Play").click()
                page.wait_for_function("() => window.__frames.length >= 2", timeout=PAGE_TIMEOUT_MS)
                context.close()
                warm, settle_s = wait_for_threads(process.pid, at_most=None, timeout_s=120)
                results["warm"] = {**warm, "thread_names": thread_names(process.pid),
                                   "warmup_load_s": round(warm_load_s, 2), "settle_s": round(settle_s, 1)}

                sampler = Sampler(process.pid, base)
                sampler.phase = "opening"
                sampler.start()
                opened = []
                for index in range(sessions):
                    context, page, load_s = open_session(browser, url + session_query(index, n, steps))
                    opened.append((context, page, load_s))
                sampler.phase = "playing"
                for _, page, _ in opened:
                    page.get_by_role("button", name="▶ Play").click()
                for _, page, _ in opened:
                    page.wait_for_function("() => window.__frames.length >= 1", timeout=PAGE_TIMEOUT_MS)
                play_started = time.monotonic()
                time.sleep(duration_s)
                frames = [page.evaluate("() => window.__frames.slice()") for _, page, _ in opened]
                played_s = time.monotonic() - play_started
                sampler.phase = "pausing"
                for _, page, _ in opened:  # read settings back from idle sessions
                    page.get_by_role("button", name="Pause").click()
                isolation = check_isolation([page for _, page, _ in opened], n)
                statuses = [_safe_status(page) for _, page, _ in opened]
                sampler.phase = "closing"
                for context, _, _ in opened:
                    context.close()
            finally:
                browser.close()
        during = [s for s in sampler.samples if s["phase"] == "playing"]
        sampler.phase = "closed"
        after, after_s = wait_for_threads(process.pid, at_most=results["warm"]["threads"], timeout_s=120)
        after = {**after, "thread_names": thread_names(process.pid), "seconds_after_close": round(after_s, 1)}
        sampler.stop()
        results["sessions"] = [
            {"session": i, "dt": session_dt(i), "load_to_play_s": round(opened[i][2], 2),
             **frame_stats(frames[i]), "status": statuses[i]}
            for i in range(sessions)
        ]
        latencies = [lat for _, lat, phase in sampler.latencies if phase == "playing"]
        finite = [lat for lat in latencies if lat != float("inf")]
        results["played_s"] = round(played_s, 1)
        results["liveness_during_play"] = {
            "probes": len(latencies), "failed": len(latencies) - len(finite),
            "p50_ms": round(1000 * percentile(finite, 0.5), 1), "p95_ms": round(1000 * percentile(finite, 0.95), 1),
            "max_ms": round(1000 * max(finite), 1) if finite else None,
        }
        results["during"] = {
            "rss_mib_max": max((s["rss_mib"] for s in during), default=None),
            "threads_max": max((s["threads"] for s in during), default=None),
            "load_1min_mean": round(statistics.mean(s["load_1min"] for s in during), 2) if during else None,
        }
        results["after"] = after
        results["isolation"] = isolation
        results["threads_back_to_baseline"] = after["threads"] <= results["warm"]["threads"]
        results["timeline"] = sampler.samples
        all_p50 = [s["p50_ms"] for s in results["sessions"] if s["p50_ms"] is not None]
        all_p95 = [s["p95_ms"] for s in results["sessions"] if s["p95_ms"] is not None]
        results["summary"] = {
            "sessions_with_frames": sum(1 for s in results["sessions"] if s["frames"] >= 3),
            "median_of_session_p50_ms": round(statistics.median(all_p50), 1) if all_p50 else None,
            "worst_session_p95_ms": max(all_p95) if all_p95 else None,
            "total_fps": round(sum(s["fps"] for s in results["sessions"]), 1),
        }
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        stop_server(process)
        shutil.rmtree(cache_dir, ignore_errors=True)
    return results


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_rate(pid: int, window_s: float = 0.5) -> float:
    """Cores the server used over the next ``window_s`` seconds."""
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(window_s)
    return (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


HEAVY_QUERY = "?" + urllib.parse.urlencode(
    {"preset": "plummer", "n": 2000, "integrator": "yoshida4", "steps": 200, "seed": 7}
)  # issue 16's example at today's caps (max_bodies 2000, max_steps_per_frame 200)
CPU_RELEASED_CORES = 0.15  # "released": the server uses under 15 % of a core
RELEASE_WINDOW_S = 0.25  # CPU is sampled over windows this long after the heavy tabs close
TRIM_WAIT_S = 5.0  # the registry trims 2 s after the last session is destroyed; margin for load


def run_mixed_load_test(*, heavy: int = 2, light: int = 10, duration_s: float = 20.0, n: int = 200,
                        log_dir: Path | None = None) -> dict:
    """Issue 16's goal mix: ``heavy`` sessions at the caps plus ``light`` sessions playing."""
    from playwright.sync_api import sync_playwright

    cache_dir = tempfile.mkdtemp(prefix="nbody-load-jax-")
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="nbody-load-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/app"
    results: dict = {
        "mode": "mixed",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "config": {"heavy": heavy, "heavy_query": HEAVY_QUERY, "light": light, "n": n, "duration_s": duration_s,
                   "check_unused_sessions_ms": SESSION_CHECK_MS, "unused_session_lifetime_ms": SESSION_LIFETIME_MS},
        "load_average_start": os.getloadavg(),
    }
    process = start_server(port, log_path=log_dir / "load-server.log", cache_dir=cache_dir)
    sampler = None
    try:
        wait_live(base, process)
        time.sleep(1.0)
        results["cold"] = process_sample(process.pid)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                context, page, warm_load_s = open_session(browser, url + session_query(0, n, 1))
                page.get_by_role("button", name="▶ Play").click()
                page.wait_for_function("() => window.__frames.length >= 2", timeout=PAGE_TIMEOUT_MS)
                context.close()
                warm, _ = wait_for_threads(process.pid, at_most=None, timeout_s=120)
                untrimmed = warm["rss_mib"]
                # The baseline is taken as "after" is: once the registry has trimmed memory
                # (2 s after the last session is destroyed), so the two compare like for like.
                time.sleep(TRIM_WAIT_S)
                warm = process_sample(process.pid)
                results["warm"] = {**warm, "rss_mib_before_trim": untrimmed, "warmup_load_s": round(warm_load_s, 2)}

                sampler = Sampler(process.pid, base)
                sampler.phase = "opening"
                sampler.start()
                heavy_pages = [open_session(browser, url + HEAVY_QUERY) for _ in range(heavy)]
                light_pages = [open_session(browser, url + session_query(i, n, 1)) for i in range(light)]
                sampler.phase = "playing"
                for _, page, _ in heavy_pages + light_pages:
                    page.get_by_role("button", name="▶ Play").click()
                # Measure only once every session draws (the first frames compile; on a busy
                # machine that alone can take longer than the measuring window).
                started = time.monotonic()
                for _, page, _ in heavy_pages + light_pages:
                    page.wait_for_function("() => window.__frames.length >= 1", timeout=PAGE_TIMEOUT_MS)
                results["all_drawing_after_s"] = round(time.monotonic() - started, 2)
                time.sleep(duration_s / 2)
                # One more student arrives while everyone plays: how long until it is usable?
                context, page, new_page_s = open_session(browser, url + session_query(light + 1, n, 1))
                results["new_page_usable_s"] = round(new_page_s, 2)
                context.close()
                time.sleep(duration_s / 2)
                frames = [page.evaluate("() => window.__frames.slice()") for _, page, _ in light_pages]
                sampler.phase = "heavy-only"
                for _, page, _ in light_pages:
                    page.get_by_role("button", name="Pause").click()
                cpu_heavy = cpu_rate(process.pid, 2.0)
                sampler.phase = "closing"
                closed_at = time.monotonic()
                for context, _, _ in heavy_pages:
                    context.close()
                released_s, rates = None, []
                while time.monotonic() - closed_at < 60:
                    rate = cpu_rate(process.pid, RELEASE_WINDOW_S)
                    rates.append((round(time.monotonic() - closed_at, 2), round(rate, 2)))
                    if rate < CPU_RELEASED_CORES:
                        released_s = round(time.monotonic() - closed_at, 2)
                        break
                results["cpu"] = {"heavy_playing_cores": round(cpu_heavy, 2), "released_after_close_s": released_s,
                                  "after_close_cores": rates}
                sampler.phase = "closing"
                for context, _, _ in light_pages:
                    context.close()
            finally:
                browser.close()
        sampler.phase = "closed"
        after, after_s = wait_for_threads(process.pid, at_most=results["warm"]["threads"], timeout_s=120)
        time.sleep(TRIM_WAIT_S)  # the registry trims memory 2 s after the last session is destroyed
        after = {**process_sample(process.pid), "seconds_after_close": round(after_s + TRIM_WAIT_S, 1)}
        after["rss_vs_warm"] = round(after["rss_mib"] / results["warm"]["rss_mib"], 3)
        sampler.stop()
        playing = [lat for _, lat, phase in sampler.latencies if phase == "playing"]
        finite = [lat for lat in playing if lat != float("inf")]
        during = [x for x in sampler.samples if x["phase"] == "playing"]
        results["liveness_during_play"] = {
            "probes": len(playing), "failed": len(playing) - len(finite),
            "p50_ms": round(1000 * percentile(finite, 0.5), 1), "p95_ms": round(1000 * percentile(finite, 0.95), 1),
            "max_ms": round(1000 * max(finite), 1) if finite else None,
        }
        results["light_sessions"] = [{"session": i, **frame_stats(frames[i])} for i in range(light)]
        results["during"] = {
            "rss_mib_max": max((x["rss_mib"] for x in during), default=None),
            "threads_max": max((x["threads"] for x in during), default=None),
            "load_1min_mean": round(statistics.mean(x["load_1min"] for x in during), 2) if during else None,
        }
        results["after"] = after
        results["timeline"] = sampler.samples
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        stop_server(process)
        shutil.rmtree(cache_dir, ignore_errors=True)
    return results


def write_mixed_results(results: dict, stem: str = "load_mixed") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    config, live, cpu = results["config"], results["liveness_during_play"], results["cpu"]
    fps = [row["fps"] for row in results["light_sessions"]]
    lines = [
        f"# Mixed load: {config['heavy']} heavy sessions at the caps + {config['light']} light sessions playing",
        "",
        f"`python benchmarks/load_test.py --mixed --heavy {config['heavy']} --light {config['light']} "
        f"--duration {config['duration_s']:g} --n {config['n']}` on {results['machine']['cpus']} CPUs, one server "
        f"process, loopback, headless Chromium on the same CPUs. Heavy: `{config['heavy_query']}`. Load average "
        f"at start {results['load_average_start'][0]:.1f}, mean while playing {results['during']['load_1min_mean']} "
        "(a shared machine: other jobs ran too).",
        "",
        "| figure | value | goal (issue 16) |",
        "|---|---|---|",
        f"| `/liveness` while playing: p50 / p95 / max | {live['p50_ms']} / {live['p95_ms']} / {live['max_ms']} ms "
        f"({live['failed']} of {live['probes']} failed) | p95 ≤ 200 ms |",
        f"| a new page usable (Play shown) while all play | {results['new_page_usable_s']} s | ≤ 5 s |",
        f"| server CPU with only the heavy sessions playing | {cpu['heavy_playing_cores']} cores | |",
        f"| server CPU under {CPU_RELEASED_CORES} core after the heavy tabs close | "
        f"{cpu['released_after_close_s']} s | ≤ 1 s |",
        f"| light sessions: frames/s min / median / max | {min(fps):g} / {statistics.median(fps):g} / {max(fps):g} | |",
        f"| server RSS MiB: cold / warm (after trim) / max playing / after close + trim | "
        f"{results['cold']['rss_mib']} / {results['warm']['rss_mib']} / {results['during']['rss_mib_max']} / "
        f"{results['after']['rss_mib']} (x{results['after'].get('rss_vs_warm', float('nan')):.2f} of warm) | "
        "back to warm ± 10 % |",
        "",
        f"Every session drew its first frame {results.get('all_drawing_after_s')} s after Play (compiles "
        "included); the windows above start then. CPU after the heavy tabs closed, sampled over "
        f"{RELEASE_WINDOW_S:g} s windows (seconds after close, cores): {cpu['after_close_cores']}.",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return RESULTS / f"{stem}.md"


def write_results(results: dict, stem: str = "load") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    config, summary = results["config"], results["summary"]
    warm, after, during = results["warm"], results["after"], results["during"]
    live = results["liveness_during_play"]
    lines = [
        f"# Load test: {config['sessions']} browser sessions playing Plummer N = {config['n']} "
        f"for {config['duration_s']:g} s",
        "",
        f"`python benchmarks/load_test.py --sessions {config['sessions']} --duration {config['duration_s']:g} "
        f"--n {config['n']}` on {results['machine']['cpus']} CPUs, one server process, loopback, headless "
        f"Chromium (the browsers share the same CPUs). Mean load average while playing: "
        f"{during['load_1min_mean']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| sessions drawing frames | {summary['sessions_with_frames']} / {config['sessions']} |",
        f"| frame interval p50 (median over sessions) | {summary['median_of_session_p50_ms']} ms |",
        f"| frame interval p95 (worst session) | {summary['worst_session_p95_ms']} ms |",
        f"| frames/s, all sessions together | {summary['total_fps']} |",
        f"| `/liveness` while playing: p50 / p95 / max | {live['p50_ms']} / {live['p95_ms']} / {live['max_ms']} ms "
        f"({live['failed']} of {live['probes']} failed) |",
        f"| each session kept its own settings | {'yes' if results['isolation']['ok'] else 'NO'} |",
        f"| server threads: cold / warm baseline / max playing / after close | {results['cold']['threads']} / "
        f"{warm['threads']} / {during['threads_max']} / {after['threads']} |",
        f"| server RSS MiB: cold / warm baseline / max playing / after close | {results['cold']['rss_mib']} / "
        f"{warm['rss_mib']} / {during['rss_mib_max']} / {after['rss_mib']} |",
        f"| threads back to baseline | {'yes' if results['threads_back_to_baseline'] else 'NO'}, "
        f"{after['seconds_after_close']} s after the pages closed (sessions destroyed after "
        f"{config['unused_session_lifetime_ms'] / 1000:g} s) |",
        "",
        "| session | dt | load → Play (s) | frames | p50 (ms) | p95 (ms) | max (ms) | frames/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["sessions"]:
        lines.append(
            f"| {row['session']} | {row['dt']:g} | {row['load_to_play_s']} | {row['frames']} | {row['p50_ms']} "
            f"| {row['p95_ms']} | {row['max_ms']} | {row['fps']} |"
        )
    if results["isolation"]["problems"]:
        lines += ["", "Isolation problems:", *(f"- {p}" for p in results["isolation"]["problems"])]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return RESULTS / f"{stem}.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="concurrent browser sessions (default 20)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds every session plays (default 60)")
    parser.add_argument("--n", type=int, default=200, help="bodies per session (Plummer, default 200)")
    parser.add_argument("--steps", type=int, default=1, help="integrator steps per frame (default 1)")
    parser.add_argument("--output-stem", default=None, help="results file name stem (default load / load_mixed)")
    parser.add_argument("--mixed", action="store_true", help="issue 16's mix: --heavy sessions at the caps + --light")
    parser.add_argument("--heavy", type=int, default=2, help="--mixed: sessions at the caps (default 2)")
    parser.add_argument("--light", type=int, default=10, help="--mixed: light sessions playing (default 10)")
    args = parser.parse_args(argv)
    if args.mixed:
        results = run_mixed_load_test(heavy=args.heavy, light=args.light, duration_s=args.duration, n=args.n)
        print(write_mixed_results(results, args.output_stem or "load_mixed").read_text())
        return 0
    if args.sessions < 1 or args.duration <= 0 or args.n < 2 or args.steps < 1:
        parser.error("--sessions >= 1, --duration > 0, --n >= 2 and --steps >= 1 are required")
    results = run_load_test(sessions=args.sessions, duration_s=args.duration, n=args.n, steps=args.steps)
    print(write_results(results, args.output_stem or "load").read_text())
    return 0 if results["isolation"]["ok"] and results["threads_back_to_baseline"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
