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
import re
import signal
import sys
import threading
from typing import NoReturn

from .. import __version__
from ._wording import cli_wording


class UserError(Exception):
    """An error whose message is all the user needs (printed as one line, exit code 2)."""


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside a training run (whose own handler stops it after a checkpoint): unwound like Ctrl-C, so
    that a file being written (an export, a converted checkpoint) leaves no temporary file behind."""

    exit_code = 128 + signal.SIGTERM


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def _out_of_memory(error: BaseException) -> str | None:
    """The first line of an allocation failure (MemoryError, or PyTorch's on the CPU or a GPU), else None."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if not (isinstance(error, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()):
        return None
    size = re.search(r"tried to allocate (\d+) bytes", text)  # PyTorch's CPU allocator names the size
    return f"an allocation of {int(size.group(1)) / 2**30:,.1f} GiB failed" if size else text


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like the commands' own (usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Builds the parser with every command found in ``senet.cli``.

    Building it imports no torch: each command's ``register`` only declares its options (their choices
    come from ``senet._choices``), and its ``run`` imports what the work needs.
    """
    parser = _Parser(
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a malformed command line (one line on stderr)
        return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # SIGTERM unwinds like Ctrl-C (from the main thread, over a handler Python can put back afterwards).
    own = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is not None
    previous = signal.signal(signal.SIGTERM, _terminate) if own else None
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # e.g. `senet profile --paper | head`
        sys.stderr.close()
        return 0
    except _Terminated as stopped:
        print("senet: stopped by SIGTERM; nothing partial was left", file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt as interrupted:  # a second Ctrl-C: nothing partial is left (docs/reliability.md)
        hint = getattr(interrupted, "resume_command", None)  # set by an experiment of several runs
        more = f"; the finished runs are kept; continue with: {hint}" if hint else ""
        print(f"senet: interrupted{more}", file=sys.stderr)
        return 130
    except (UserError, ValueError, OSError) as e:  # includes missing files, refused overwrites, full disks
        if os.environ.get("SENET_DEBUG"):
            raise
        print(f"senet {args.command}: error: {cli_wording(args.command, str(e))}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # an allocation that cannot be made (a huge size or batch)
        what = _out_of_memory(e)
        if what is None or os.environ.get("SENET_DEBUG"):
            raise
        print(f"senet {args.command}: error: out of memory ({what}); try smaller sizes", file=sys.stderr)
        return 2
    finally:
        if own:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
