"""The ``kubepulse`` command. Thin: parse arguments, then call into the layers.

Each command group lives next to the layer it drives and contributes its sub-parser through a
``register(subparsers)`` function; this module only wires them together and turns the errors
the layers raise into one clear sentence and a non-zero exit.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from kubepulse import __version__
from kubepulse.errors import KubepulseError

EPILOG = """\
examples:
  kubepulse doctor                         check this kernel before anything attaches
  kubepulse events                         stream every TCP connection, classified
  kubepulse events --outcome refused,timeout --duration 30
  kubepulse events --json | jq .           JSON Lines for scripts
  kubepulse run --inventory inv.json       the node agent: detect, alert
  kubepulse lab up && kubepulse lab status a two-node lab cluster of netns pods

Run 'kubepulse COMMAND --help' for the options of one command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubepulse",
        description=(
            "kubepulse watches every TCP connection on this node from the kernel (CO-RE eBPF, "
            "tracepoints only), classifies how each one ended, and tells you which pod-to-pod "
            "paths are breaking and why."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kubepulse {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for libbpf's own)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    from kubepulse.kernel import doctor as doctor_cmd
    from kubepulse.probes import events_cmd

    doctor_cmd.register(sub)
    events_cmd.register(sub)
    for name in ("kubepulse.agent.run_cmd", "kubepulse.lab.cli"):
        module = _optional(name)
        if module is not None:
            module.register(sub)
    return parser


def _optional(name: str):  # type: ignore[no-untyped-def]
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        rc = args.func(args)
    except KubepulseError as exc:
        print(f"kubepulse: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `kubepulse events | head`: the reader went away; that is not an error.
        sys.stderr.close()
        return 0
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
