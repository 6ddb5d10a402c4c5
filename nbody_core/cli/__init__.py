"""The ``nbody`` console script: one sub-command per module in this package.

Each sub-command module exposes ``register(subparsers)``, which adds its parser and sets
``handler=function(args) -> int``. Bad input raises ``ValueError`` (or ``OSError``), which
``main`` prints as one line on stderr with exit status 2, never a traceback; running out
of memory or an XLA runtime failure is one line with exit status 3.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nbody_core.physics.precision import enable_float64

__all__ = ["main", "build_parser", "one_line_errors", "check_output_path", "seed", "MAX_SEED",
           "run_in_worker", "exit_now_if_computing"]

# Sub-command modules, imported lazily by build_parser so `nbody --help` stays fast.
SUBCOMMAND_MODULES = ["presets", "run", "infer", "ensemble", "serve", "emulate"]

#: Largest PRNG seed: ``jax.random.key`` keeps 32 bits of it (2**32 gives the same key as 0
#: without float64), and ``nbody ensemble`` already refuses larger ones.
MAX_SEED = 2**32 - 1


def seed(text: str) -> int:
    """argparse type of ``--seed``: an integer in ``[0, MAX_SEED]`` (one clear line otherwise,
    never an ``OverflowError`` traceback from ``jax.random.key``)."""
    try:
        value = int(text.strip().replace("_", ""), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_SEED}], got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_SEED}], got {text}")
    return value


def _one_line_error(message: str):
    print(f"nbody: error: {message} (see nbody --help)", file=sys.stderr)
    raise SystemExit(2)


def one_line_errors(parser: argparse.ArgumentParser, command: str) -> None:
    """Make ``parser``'s own errors (a non-number for ``--dt``...) one stderr line naming
    ``nbody COMMAND``, exit status 2, instead of a usage dump."""

    def error(message: str):
        print(f"nbody {command}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error


def check_output_path(out: str) -> Path:
    """Refuse an ``--out`` path before any work is done: not ``.npz``, a directory, or in a
    missing or unwritable directory (``ValueError`` / ``OSError`` naming it)."""
    path = Path(out)
    if path.suffix != ".npz":
        raise ValueError(f"--out must name a .npz file, got {out!r}")
    if path.is_dir():
        raise OSError(f"cannot write {out!r}: it is a directory")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise OSError(f"cannot write {out!r}: directory {str(directory)!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OSError(f"cannot write {out!r}: directory {str(directory)!r} is not writable")
    return path


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a descriptor (pytest capture)
        pass


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``nbody`` parser; ``only`` registers that one sub-command alone (so ``nbody presets``
    does not import what ``nbody infer`` needs to list its choices)."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="nbody", description="N-body Explorer: a differentiable, jitted JAX N-body engine."
    )
    parser.error = _one_line_error  # unknown command/option: one line, not a usage dump
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMAND_MODULES if only not in SUBCOMMAND_MODULES else [only]:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``nbody ARGV`` (default: ``sys.argv[1:]``) and return its exit status.

    Turns on float64 first (:func:`nbody_core.enable_float64`): every sub-command computes in
    float64 unless told ``--dtype float32``.
    """
    enable_float64()
    words = sys.argv[1:] if argv is None else list(argv)
    command = next((word for word in words if not word.startswith("-")), None)
    parser = build_parser(only=command)
    args = parser.parse_args(words)
    # What provenance() records as the command (sys.argv when called as the console script).
    args.command_line = ["nbody", *words]
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        # The reader went away (`nbody presets | head -1`): stop quietly, as cat does. Point
        # stdout at /dev/null so the interpreter's final flush cannot complain either.
        _silence_stdout()
        return 0
    except (ValueError, OSError) as error:
        print(f"nbody {args.command}: error: {error}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"nbody {args.command}: error: out of memory; use fewer bodies, members or steps", file=sys.stderr)
        return 3
    except RuntimeError as error:
        # XLA failures (RESOURCE_EXHAUSTED for an allocation that cannot fit, a failed
        # compile) arrive as jax.errors.JaxRuntimeError: one line, not a traceback.
        if type(error).__name__ not in ("JaxRuntimeError", "XlaRuntimeError"):
            raise
        print(f"nbody {args.command}: error: {_first_line(error)}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"nbody {args.command}: interrupted", file=sys.stderr)
        # The console script (argv None) leaves at once: an interpreter shutdown after an
        # interrupted import or jitted call can abort or crash inside XLA.
        exit_now_if_computing(130, always=argv is None)
        return 130


#: Workers started by :func:`run_in_worker` that have not finished.
_UNFINISHED: set = set()


def run_in_worker(function, *arguments):
    """``function(*arguments)`` computed in a daemon thread while the main thread waits in
    short, interruptible waits: a jitted call holds the main thread for its whole length, so
    Ctrl-C (SIGINT, with or without a terminal) would otherwise act only when it returns.
    Exceptions are re-raised here; ``KeyboardInterrupt`` leaves the worker running."""
    import threading

    outcome: dict = {}
    done = threading.Event()  # not Thread.join: an interrupted join marks the thread stopped

    def work() -> None:
        try:
            outcome["value"] = function(*arguments)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
            outcome["error"] = error
        finally:
            _UNFINISHED.discard(done)
            done.set()

    _UNFINISHED.add(done)
    threading.Thread(target=work, name="nbody-worker", daemon=True).start()
    while not done.wait(0.1):
        pass
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def exit_now_if_computing(code: int, *, always: bool = False) -> None:
    """After Ctrl-C, leave at once if a :func:`run_in_worker` thread is still inside a jitted
    computation: the interpreter's normal shutdown would abort the process ("terminate called
    ...") when it tears the thread down mid-call. ``always``: leave even with no worker."""
    if _UNFINISHED or always:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
