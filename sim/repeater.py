"""``python -m sim.repeater``: a Channel Access repeater bound to loopback.

A CA client (pyepics' libca) registers with the repeater on ``EPICS_CA_REPEATER_PORT`` (5065 by
default) and expects a confirmation; the repeater then forwards the servers' beacons to every
registered client. libca registers with an empty datagram, which caproto's own repeater accepts
without confirming, so libca kept retrying and printed "unable to contact CA repeater after 50
tries"; this one confirms both kinds of registration.

With ``--exit-on-stdin-eof`` it ends when its standard input closes, so it cannot outlive the
process that started it.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct

from sim.ioc import LOOPBACK, exit_when_stdin_closes

__all__ = ["serve", "main"]

_HEADER = struct.Struct(">HHHHII")  # command, payload size, data type, data count, parameter 1, parameter 2
_BEACON, _CONFIRM, _REGISTER = 13, 17, 24  # RSRV_IS_UP, REPEATER_CONFIRM, REPEATER_REGISTER


def _ip(host: str) -> int:
    return struct.unpack(">I", socket.inet_aton(host))[0]


def _with_sender(message: bytes, host: str) -> bytes:
    """The datagram with the sender's address filled into beacons that leave it 0."""
    out, offset = bytearray(message), 0
    while offset + _HEADER.size <= len(out):
        command, size, dtype, count, p1, p2 = _HEADER.unpack_from(out, offset)
        if command == _BEACON and p2 == 0:
            _HEADER.pack_into(out, offset, command, size, dtype, count, p1, _ip(host))
        offset += _HEADER.size + size
    return bytes(out)


def _gone(client: tuple[str, int]) -> bool:
    """Whether the client's UDP port is free again (its process ended)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("", client[1]))
        except OSError:
            return False
        return True


def serve(host: str = LOOPBACK, port: int | None = None) -> None:
    """Run the repeater on ``host:port`` (port: ``EPICS_CA_REPEATER_PORT``, else 5065) forever."""
    port = int(port if port is not None else os.environ.get("EPICS_CA_REPEATER_PORT", "5065"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    clients: set[tuple[str, int]] = set()
    while True:
        message, sender = sock.recvfrom(65536)
        if not message or (len(message) >= _HEADER.size and _HEADER.unpack_from(message)[0] == _REGISTER):
            clients = {c for c in clients if c == sender or not _gone(c)}
            clients.add(sender)
            sock.sendto(_HEADER.pack(_CONFIRM, 0, 0, 0, 0, _ip(sender[0])), sender)
            continue
        message = _with_sender(message, sender[0])
        for client in list(clients - {sender}):
            try:
                sock.sendto(message, client)
            except OSError:
                clients.discard(client)


def main(argv: list[str] | None = None) -> None:
    """Run the repeater until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sim.repeater", description=__doc__.split("\n\n")[0])
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="end when standard input closes (for a parent that owns this process)")
    args = parser.parse_args(argv)
    if args.exit_on_stdin_eof:
        exit_when_stdin_closes()
    try:
        serve()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
