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

__all__ = ["main", "build_parser", "one_line_errors", "check_output_path"]

# Sub-command modules, imported lazily by build_parser so `nbody --help` stays fast.
SUBCOMMAND_MODULES = ["presets", "run", "infer", "ensemble"]


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


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="nbody", description="N-body Explorer: a differentiable, jitted JAX N-body engine."
    )
    parser.error = _one_line_error  # unknown command/option: one line, not a usage dump
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
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
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
