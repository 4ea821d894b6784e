"""``python -m sim.repeater``: a Channel Access repeater bound to loopback (caproto's).

Listens on ``EPICS_CA_REPEATER_PORT`` (5065 by default). With ``--exit-on-stdin-eof`` it ends when
its standard input closes, so it cannot outlive the process that started it.
"""

from __future__ import annotations

import argparse

from caproto.sync.repeater import run

from sim.ioc import LOOPBACK, exit_when_stdin_closes

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run the repeater until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sim.repeater", description=__doc__.split("\n\n")[0])
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="end when standard input closes (for a parent that owns this process)")
    args = parser.parse_args(argv)
    if args.exit_on_stdin_eof:
        exit_when_stdin_closes()
    try:
        run(host=LOOPBACK)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
