"""``senet`` entry point. Every module in ``senet.cli`` with a ``register(subparsers)`` function is a
command; ``register`` adds its parser and sets ``func`` (taking the parsed namespace, returning an exit
code). Errors a user can fix (``ValueError``, ``FileNotFoundError``, ...) end as one line and a non-zero
exit, never a traceback; ``SENET_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from .. import __version__


class UserError(Exception):
    """An error whose message is all the user needs (printed as one line, exit code 2)."""


def build_parser() -> argparse.ArgumentParser:
    """Builds the parser with every command found in ``senet.cli``."""
    parser = argparse.ArgumentParser(
        prog="senet",
        description="Squeeze-and-Excitation networks: build, profile, train, compare and benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"senet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = importlib.import_module("senet.cli")
    modules = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"senet.cli.{info.name}")
        if hasattr(module, "register"):
            modules.append(module)
    for module in sorted(modules, key=lambda m: (getattr(m, "ORDER", 50), m.__name__)):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # e.g. `senet profile --paper | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("senet: interrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, OSError) as e:  # includes missing files, refused overwrites, full disks
        if os.environ.get("SENET_DEBUG"):
            raise
        print(f"senet {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
