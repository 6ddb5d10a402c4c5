"""``nbody serve``: run the dashboard (the ``app`` directory app) with safe settings.

Equivalent to ``panel serve app`` with: loopback only (``--address 127.0.0.1``) unless told
otherwise; signed session ids with a secret key (``BOKEH_SECRET_KEY`` or
``NBODY_SECRET_KEY`` when set, else a random key made at each start, so a guessed or
copied ``?bokeh-session-id=`` joins nothing); websocket origins ``localhost:PORT`` and
``127.0.0.1:PORT`` plus any given; an explicit websocket message cap; ``/liveness``; a
session cap (``--max-sessions`` / ``NBODY_MAX_SESSIONS``) and a per-address cap
(``--max-sessions-per-address`` / ``NBODY_MAX_SESSIONS_PER_ADDRESS``), both counting viewers
(browsers connected, not bare page requests), past which a new page gets a friendly
"full" page instead of a dashboard; ``/health`` (JSON, HTTP 503 when a piece of work
overruns ``--piece-bound`` / ``NBODY_PIECE_BOUND_S``, default 5 s); and the compute slots
(``--jax-slots`` / ``NBODY_JAX_SLOTS``, default the machine's cores, for all processes together).

Panel is imported inside :func:`handle` only: the core package never imports it.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import errno
import os
import secrets
import shlex
import signal
import socket
import sys
import tempfile
from pathlib import Path

from nbody_core.cli import one_line_errors

#: Largest websocket message the server accepts, bytes. Bokeh's own default is 20 MiB; ours
#: is explicit and smaller: the largest upload allowed (NBODY_MAX_UPLOAD_BYTES, at most 5 MB)
#: travels base64-encoded (x 4/3) inside one message, so 10 MiB always fits it. A larger
#: message closes that browser's websocket (the browser refuses files over the cap first).
WEBSOCKET_MAX_MESSAGE_BYTES = 10 * 2**20
DEFAULT_PORT = 5006
#: The dashboard's session cap when neither --max-sessions nor NBODY_MAX_SESSIONS sets one, and
#: the largest it takes. The launcher checks the cap itself (this library never imports the
#: app); the app reads the same variable and applies the same bounds.
DEFAULT_MAX_SESSIONS = 30
MAX_SESSIONS_CEILING = 10_000
#: The per-address cap when neither --max-sessions-per-address nor
#: NBODY_MAX_SESSIONS_PER_ADDRESS sets one (nbody_explorer.limits.DEFAULT_MAX_SESSIONS_PER_ADDRESS).
DEFAULT_MAX_SESSIONS_PER_ADDRESS = 5
#: How often the server looks for sessions to discard, milliseconds (Bokeh's default: 17 000).
CHECK_UNUSED_SESSIONS_MS = 1000
#: Largest ``--jax-slots`` (the app applies the same bound to ``NBODY_JAX_SLOTS``).
JAX_SLOTS_CEILING = 256
#: The Panel plugin module that serves ``/health`` (named, never imported here).
HEALTH_PLUGIN = "nbody_explorer.runtime.health"
SECRET_KEY_VARIABLES = ("BOKEH_SECRET_KEY", "NBODY_SECRET_KEY")
#: Most ``--processes``.
PROCESSES_CEILING = 64
_PR_SET_PDEATHSIG = 1  # prctl(2)


def _die_with_parent() -> None:
    """In a forked server process: get SIGTERM when the parent dies (Linux), so stopping
    ``nbody serve --processes K`` stops its K children (Tornado's parent does not)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the dashboard (loopback only by default, signed sessions, a session cap)",
        description=(
            "Serve the N-body Explorer dashboard at http://ADDRESS:PORT/app. Listens on "
            "127.0.0.1 only unless --address says otherwise; for a classroom give the "
            "machine's address and every host:port students type with --allow-websocket-origin."
        ),
    )
    one_line_errors(parser, "serve")
    parser.add_argument("--address", default="127.0.0.1", help="interface to listen on (default 127.0.0.1; 0.0.0.0 = all)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--allow-websocket-origin", action="append", default=[], metavar="HOST[:PORT]",
        help="a page address allowed to open the dashboard (repeatable); localhost:PORT and "
        "127.0.0.1:PORT are always allowed; default from NBODY_WEBSOCKET_ORIGINS (comma-separated)",
    )
    parser.add_argument(
        "--max-sessions", type=int, metavar="N",
        help=f"most dashboard sessions at once (default NBODY_MAX_SESSIONS or {DEFAULT_MAX_SESSIONS})",
    )
    parser.add_argument(
        "--max-sessions-per-address", type=int, metavar="K",
        help="most dashboard sessions one client address may hold, 0 for no limit (default "
        f"NBODY_MAX_SESSIONS_PER_ADDRESS or {DEFAULT_MAX_SESSIONS_PER_ADDRESS}); a class behind one "
        "NAT router that reaches this server from outside its LAN shares one address: raise it to the class size",
    )
    parser.add_argument(
        "--disconnect-grace", type=float, metavar="SECONDS",
        help="seconds a browser whose connection dropped keeps its place under the caps "
        "(default NBODY_DISCONNECT_GRACE_S or 5)",
    )
    parser.add_argument(
        "--connect-timeout", type=float, metavar="SECONDS",
        help="seconds a page request may take to open its websocket before its session is destroyed "
        "(a plain GET never does; default NBODY_CONNECT_TIMEOUT_S or 5)",
    )
    parser.add_argument(
        "--use-xheaders", action="store_true",
        help="behind a reverse proxy: take each client's address from X-Real-Ip / X-Forwarded-For "
        "(without it every student appears as the proxy, one address under --max-sessions-per-address)",
    )
    parser.add_argument(
        "--jax-slots", type=int, metavar="K",
        help="JAX computations at once in this process, one per session at most "
        "(default NBODY_JAX_SLOTS or the machine's cores; with --processes, of all processes together)",
    )
    parser.add_argument(
        "--piece-bound", type=float, metavar="SECONDS",
        help="/health answers 503 'unhealthy' while a piece of work has run longer than this "
        "(default NBODY_PIECE_BOUND_S or 5)",
    )
    parser.add_argument(
        "--processes", type=int, metavar="K",
        help="server processes (default 1): Bokeh's --num-procs forks K after binding the port; "
        "their session caps, compute slots and waiting line are shared through --runtime-dir",
    )
    parser.add_argument(
        "--runtime-dir", metavar="DIR",
        help="directory whose coordinator file the server processes of one class share (default "
        "NBODY_RUNTIME_DIR; with --processes K, TMPDIR/nbody-serve-PORT); give the same one to "
        "K servers behind a load balancer on this machine",
    )
    parser.add_argument(
        "--dry-run", action="store_true",
        help="print the equivalent `env VAR=... panel serve ...` line (runs as printed) and exit",
    )
    parser.set_defaults(handler=handle)


def app_directory(link_dir: Path | None = None) -> Path:
    """The dashboard's directory app, served at ``/app``, found without importing it.

    The dashboard is the package ``nbody_explorer``. In a checkout its folder is ``app/``
    (``pip install -e .`` maps the package there), which is served as it is. Installed from a
    wheel it is ``site-packages/nbody_explorer``: Bokeh names a directory app's URL after the
    folder, so a link named ``app`` to it, in ``link_dir`` (default: ``nbody-explorer`` under
    the user's cache directory), is served instead and the URL stays ``/app``.

    Raises:
        OSError: the package is not installed, or the link cannot be made.
    """
    spec = importlib.util.find_spec("nbody_explorer")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    package = next((Path(loc) for loc in locations if (Path(loc) / "main.py").is_file()), None)
    if package is None:
        raise OSError(
            "cannot find the dashboard: the package nbody_explorer is not installed "
            "(pip install nbody-explorer, or pip install -e . from the clone)"
        )
    if package.name == "app":
        return package
    if link_dir is None:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        link_dir = Path(cache) / "nbody-explorer"
    link_dir.mkdir(parents=True, exist_ok=True)
    link = link_dir / "app"
    if not (link.is_symlink() and link.resolve() == package.resolve()):
        temporary = link_dir / f".app-{os.getpid()}"  # replaced in one rename: another server may read it
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(package, target_is_directory=True)
        os.replace(temporary, link)
    return link


def _check_origin(origin: str) -> str:
    origin = origin.strip()
    if not origin or origin == "*" or any(c in origin for c in "/ ,"):
        raise ValueError(
            f"--allow-websocket-origin must be HOST or HOST:PORT as typed in the browser, got {origin!r}"
            + (" ('*' would let any web page drive this server)" if origin == "*" else "")
        )
    return origin


def serve_arguments(args: argparse.Namespace, environ=None) -> tuple[list[str], dict[str, str]]:
    """``(arguments of panel serve, environment variables to set)`` for ``args``.

    Raises:
        ValueError: a bad port, origin or session cap.
    """
    environ = os.environ if environ is None else environ
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be in [1, 65535], got {args.port}")
    try:
        ipaddress.ip_address(args.address)
    except ValueError:
        if not args.address or any(c in args.address for c in "/ ,"):
            raise ValueError(f"--address must be an IP address or host name, got {args.address!r}") from None
    origins = list(args.allow_websocket_origin)
    if not origins and environ.get("NBODY_WEBSOCKET_ORIGINS", "").strip():
        origins = [o for o in environ["NBODY_WEBSOCKET_ORIGINS"].split(",") if o.strip()]
    allowed = [f"localhost:{args.port}", f"127.0.0.1:{args.port}"]
    for origin in origins:
        origin = _check_origin(origin)
        if origin not in allowed:
            allowed.append(origin)
    env: dict[str, str] = {}
    if args.max_sessions is not None:
        env["NBODY_MAX_SESSIONS"] = str(args.max_sessions)
    if getattr(args, "max_sessions_per_address", None) is not None:
        env["NBODY_MAX_SESSIONS_PER_ADDRESS"] = str(args.max_sessions_per_address)
    if getattr(args, "disconnect_grace", None) is not None:
        env["NBODY_DISCONNECT_GRACE_S"] = repr(float(args.disconnect_grace))
    if getattr(args, "connect_timeout", None) is not None:
        env["NBODY_CONNECT_TIMEOUT_S"] = repr(float(args.connect_timeout))
    slots = getattr(args, "jax_slots", None)
    if slots is not None:
        if not 1 <= slots <= JAX_SLOTS_CEILING:
            raise ValueError(f"--jax-slots must be in [1, {JAX_SLOTS_CEILING}], got {slots}")
        env["NBODY_JAX_SLOTS"] = str(slots)
    bound = getattr(args, "piece_bound", None)
    if bound is not None:
        if not 0.0 < bound <= 3600.0:  # also refuses NaN
            raise ValueError(f"--piece-bound must be a number of seconds in (0, 3600], got {bound}")
        env["NBODY_PIECE_BOUND_S"] = repr(bound)
    key = environ.get("BOKEH_SECRET_KEY") or environ.get("NBODY_SECRET_KEY")
    if key and len(key.encode()) < 32:
        raise ValueError("the secret key (BOKEH_SECRET_KEY / NBODY_SECRET_KEY) must be at least 32 bytes")
    # A key made per start: sessions do not survive a restart, which a dashboard does not need.
    env["BOKEH_SECRET_KEY"] = key or secrets.token_urlsafe(48)
    env["BOKEH_SIGN_SESSIONS"] = "true"
    arguments = [
        "serve", str(app_directory()),
        "--address", args.address,
        "--port", str(args.port),
        "--session-ids", "signed",
        "--websocket-max-message-size", str(WEBSOCKET_MAX_MESSAGE_BYTES),
        "--liveness",
        "--plugins", HEALTH_PLUGIN,
        # Look for sessions to discard every second, not Bokeh's 17 s: a page request that never
        # connects is destroyed within a second of --connect-timeout (a closed tab's session
        # still lives Bokeh's --unused-session-lifetime, 15 s, for a reconnect).
        "--check-unused-sessions", str(CHECK_UNUSED_SESSIONS_MS),
    ]
    if getattr(args, "use_xheaders", False):
        arguments.append("--use-xheaders")
    processes = getattr(args, "processes", None)
    processes = 1 if processes is None else processes
    if not 1 <= processes <= PROCESSES_CEILING:
        raise ValueError(f"--processes must be in [1, {PROCESSES_CEILING}], got {processes}")
    runtime_dir = getattr(args, "runtime_dir", None) or environ.get("NBODY_RUNTIME_DIR", "").strip()
    if processes > 1:
        # Forked after the port is bound; JAX is first imported by a session, in the child (the
        # parent never loads it: forking a process that has started XLA's threads is unsafe).
        arguments += ["--num-procs", str(processes)]
        runtime_dir = runtime_dir or os.path.join(tempfile.gettempdir(), f"nbody-serve-{args.port}")
    if runtime_dir:
        env["NBODY_RUNTIME_DIR"] = str(Path(runtime_dir).resolve())
    for origin in allowed:
        arguments += ["--allow-websocket-origin", origin]
    return arguments, env


def session_cap(args: argparse.Namespace, environ) -> int:
    """The session cap the dashboard will apply: ``--max-sessions``, else ``NBODY_MAX_SESSIONS``,
    else :data:`DEFAULT_MAX_SESSIONS`.

    Raises:
        ValueError: naming the flag or the variable, if the cap is not an integer in
            [1, :data:`MAX_SESSIONS_CEILING`].
    """
    if args.max_sessions is not None:
        source, text = "--max-sessions", str(args.max_sessions)
    elif environ.get("NBODY_MAX_SESSIONS", "").strip():
        source, text = "NBODY_MAX_SESSIONS", environ["NBODY_MAX_SESSIONS"]
    else:
        return DEFAULT_MAX_SESSIONS
    cleaned = text.strip().replace("_", "")
    if not cleaned.lstrip("-").isdigit():
        raise ValueError(f"{source} must be a whole number of sessions, got {text!r}")
    if not 1 <= int(cleaned) <= MAX_SESSIONS_CEILING:
        raise ValueError(f"{source} must be in [1, {MAX_SESSIONS_CEILING}], got {text}")
    return int(cleaned)


def per_address_cap(args: argparse.Namespace, environ) -> int:
    """The per-address cap the dashboard will apply: ``--max-sessions-per-address``, else
    ``NBODY_MAX_SESSIONS_PER_ADDRESS``, else :data:`DEFAULT_MAX_SESSIONS_PER_ADDRESS`; 0 = none.

    Raises:
        ValueError: naming the flag or the variable, if it is not an integer in
            [0, :data:`MAX_SESSIONS_CEILING`].
    """
    if getattr(args, "max_sessions_per_address", None) is not None:
        source, text = "--max-sessions-per-address", str(args.max_sessions_per_address)
    elif environ.get("NBODY_MAX_SESSIONS_PER_ADDRESS", "").strip():
        source, text = "NBODY_MAX_SESSIONS_PER_ADDRESS", environ["NBODY_MAX_SESSIONS_PER_ADDRESS"]
    else:
        return DEFAULT_MAX_SESSIONS_PER_ADDRESS
    cleaned = text.strip().replace("_", "")
    if not cleaned.lstrip("-").isdigit():
        raise ValueError(f"{source} must be a whole number of sessions, got {text!r}")
    if not 0 <= int(cleaned) <= MAX_SESSIONS_CEILING:
        raise ValueError(f"{source} must be in [0, {MAX_SESSIONS_CEILING}] (0: no per-address limit), got {text}")
    return int(cleaned)


def _seconds_option(args: argparse.Namespace, environ, flag: str, variable: str, low: float) -> float:
    """Seconds from ``flag``, else the variable ``variable``, else 5.

    Raises:
        ValueError: naming the flag or the variable, if it is not a number in [low, 600].
    """
    attribute = flag.lstrip("-").replace("-", "_")
    if getattr(args, attribute, None) is not None:
        source, text = flag, str(getattr(args, attribute))
    elif environ.get(variable, "").strip():
        source, text = variable, environ[variable]
    else:
        return 5.0
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{source} must be a number of seconds, got {text!r}") from None
    if not low <= value <= 600:
        raise ValueError(f"{source} must be in [{low:g}, 600] seconds, got {text}")
    return value


def connect_timeout(args: argparse.Namespace, environ) -> float:
    """Seconds a page has to connect: ``--connect-timeout``, else ``NBODY_CONNECT_TIMEOUT_S``, else 5.

    Raises:
        ValueError: naming the flag or the variable, if it is not a number in [1, 600].
    """
    return _seconds_option(args, environ, "--connect-timeout", "NBODY_CONNECT_TIMEOUT_S", 1.0)


def disconnect_grace(args: argparse.Namespace, environ) -> float:
    """Seconds a dropped browser keeps its place: ``--disconnect-grace``, else
    ``NBODY_DISCONNECT_GRACE_S``, else 5.

    Raises:
        ValueError: naming the flag or the variable, if it is not a number in [0, 600].
    """
    return _seconds_option(args, environ, "--disconnect-grace", "NBODY_DISCONNECT_GRACE_S", 0.0)


def dry_run_line(arguments: list[str], env: dict[str, str], environ=None) -> str:
    """The shell line that serves exactly as ``nbody serve`` would: ``env VAR=... panel serve ...``.

    A secret key taken from the environment is printed as a reference to its variable
    (``"$NBODY_SECRET_KEY"``), never as its value; a key made for this line is printed as is
    (it protects nothing until that line runs). Every word is shell-quoted.
    """
    environ = os.environ if environ is None else environ
    words = ["env"]
    for name, value in env.items():
        source = next((variable for variable in SECRET_KEY_VARIABLES
                       if name == "BOKEH_SECRET_KEY" and environ.get(variable) == value), None)
        words.append(f'{name}="${source}"' if source else shlex.quote(f"{name}={value}"))
    return " ".join([*words, "panel", *(shlex.quote(argument) for argument in arguments)])


def check_port_free(address: str, port: int) -> None:
    """Refuse a port another server already listens on, before any banner is printed.

    Binds ``(address, port)`` the way Tornado does (``SO_REUSEADDR``, so a closed server's
    lingering connections do not count) and lets it go at once.

    Raises:
        OSError: "port P is already in use on ADDRESS ...", naming --port.
    """
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise OSError(f"cannot listen on {address!r}: {error.strerror}") from None
    family, kind, protocol, _, socket_address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(socket_address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise OSError(
                    f"port {port} is already in use on {address} (another nbody serve or panel serve?); "
                    f"stop it or choose another --port"
                ) from None
            raise OSError(f"cannot listen on {address}:{port}: {error.strerror}") from None


def handle(args: argparse.Namespace) -> int:
    arguments, env = serve_arguments(args)
    # Checked now, not at the first page: a bad cap fails at start with its source named.
    cap = session_cap(args, os.environ)
    per_address = per_address_cap(args, os.environ)
    disconnect_grace(args, os.environ)
    connect_timeout(args, os.environ)
    if args.dry_run:
        print(dry_run_line(arguments, env))
        return 0
    check_port_free(args.address, args.port)  # before the banner: a busy port is the only news
    os.environ.update(env)
    print(
        f"nbody serve: http://{'localhost' if args.address in ('127.0.0.1', 'localhost') else args.address}:"
        f"{args.port}/app (listening on {args.address}; signed sessions; at most {cap} sessions, "
        f"{per_address or 'any number'} per client address; "
        f"websocket messages up to {WEBSOCKET_MAX_MESSAGE_BYTES // 2**20} MiB)",
        file=sys.stderr,
        flush=True,
    )
    if (getattr(args, "processes", None) or 1) > 1:
        os.register_at_fork(after_in_child=_die_with_parent)
    from panel.command import main as panel_main

    sys.argv = ["panel", *arguments]  # Panel's entry point parses sys.argv, not an argument
    panel_main()
    return 0
