"""``lightning-dlc <command> [hydra overrides]``: one console command whose subcommands are the Hydra apps
of this package (``lightning_dlc/cli/<command>.py``, configs in ``lightning_dlc/conf``).

Each subcommand is the whole Hydra app: overrides, ``-m`` sweeps, ``--help`` (its options and config
groups), ``--cfg job``, ``--config-dir`` / ``hydra.searchpath`` for a folder of one's own configs.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

COMMANDS = ("train", "evaluate", "analyze-videos", "analyze-images", "track", "create-labeled-video",
            "diagnostics", "create-training-dataset", "make-demo", "export", "filter-predictions",
            "plot-trajectories", "analyze-skeleton", "analyze-ensemble")

__all__ = ["COMMANDS", "main"]


def _module_name(command: str) -> str:
    return f"lightning_dlc.cli.{command.replace('-', '_')}"


def _docstring(command: str) -> str:
    """A subcommand's module docstring, read without importing it (listing commands imports no torch)."""
    spec = importlib.util.find_spec(_module_name(command))
    with open(spec.origin, encoding="utf-8") as f:
        return ast.get_docstring(ast.parse(f.read())) or ""


def usage() -> str:
    lines = ["usage: lightning-dlc <command> [key=value ...] [-m] [--help] [--cfg job]", "", "commands:"]
    for command in COMMANDS:
        summary = _docstring(command).split(":")[0].splitlines()[0].rstrip(".")
        lines.append(f"  {command:<25}{summary}")
    lines += ["", "lightning-dlc <command> --help lists the command's options and config groups."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        try:
            print(usage())
        except BrokenPipeError:  # `lightning-dlc --help | head`: the reader has what it wanted;
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        # Underscores as the scripts' names have them are accepted too.
        if command.replace("_", "-") in COMMANDS:
            command = command.replace("_", "-")
        else:
            sys.exit(f"lightning-dlc: unknown command {command!r}\n\n{usage()}")
    if "--help" in rest or "-h" in rest:
        print(_docstring(command), end="\n\n")
    app = importlib.import_module(_module_name(command))
    # Hydra reads its command line from sys.argv; the program name shows in its --help.
    sys.argv = [f"lightning-dlc {command}", *rest]
    app.main()
