"""An NFQUEUE delayer: holds each packet queued to it for a random 50-200 ms, then lets it through.

This kernel has no `sch_netem`, so delay and reordering between the fault suite's nodes come from here:
iptables sends node-to-node packets to NFQUEUE number `--queue`, and this program, run inside the node's
network namespace, takes them and gives each its verdict (accept) after its own random delay, so packets
overtake each other. It speaks nfnetlink over a plain netlink socket from the standard library, so it needs
neither libnetfilter_queue nor a Python binding of it (see `.ci/run`: nothing to install). Only the
packets' metadata is copied to us; a verdict names the packet by id.

`python -m tests.faults.delayer [--queue 0] [--min-ms 50] [--max-ms 200]` (root, in the namespace); it prints
`ready` once bound, and runs until killed.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import socket
import struct
import sys

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
QUEUE_MAXLEN = 20_000  # packets held at once; beyond it the kernel drops (or, with --queue-bypass, passes) them

_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_NFGEN = struct.Struct("=BBH")  # family, version, resource id (the queue number, big-endian)
_ATTR = struct.Struct("=HH")


def _attr(kind: int, payload: bytes) -> bytes:
    length = _ATTR.size + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def _message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    body = _NFGEN.pack(socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return _NLMSG.pack(_NLMSG.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq, 0) + body


def _attrs(data: bytes) -> dict[int, bytes]:
    out, at = {}, 0
    while at + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, at)
        if length < _ATTR.size:
            break
        out[kind & 0x3FFF] = data[at + _ATTR.size:at + length]
        at += length + (-length % 4)
    return out


def bind(queue: int) -> socket.socket:
    """A netlink socket bound to NFQUEUE `queue`, copying metadata only; raises OSError if the kernel refuses."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    config = [_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)),
              _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
              _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN))]
    for seq, attr in enumerate(config, 1):
        sock.send(_message(NFQNL_MSG_CONFIG, queue, attr, NLM_F_REQUEST | NLM_F_ACK, seq))
        reply = sock.recv(65536)
        _, kind, _, _, _ = _NLMSG.unpack_from(reply)
        if kind == NLMSG_ERROR and (error := struct.unpack_from("=i", reply, _NLMSG.size)[0]):
            raise OSError(-error, f"NFQUEUE {queue}: config {seq} refused")
    return sock


def packet_ids(data: bytes) -> list[int]:
    """The ids of the packets in one read (the kernel may batch several netlink messages)."""
    ids, at = [], 0
    while at + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, at)
        if length < _NLMSG.size or at + length > len(data):
            break  # malformed or cut short: what is left of the read cannot be trusted
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            header = _attrs(data[at + _NLMSG.size + _NFGEN.size:at + length]).get(NFQA_PACKET_HDR)
            if header is not None:
                ids.append(struct.unpack_from("!I", header)[0])
        at += length + (-length % 4)
    return ids


async def delay(queue: int, min_ms: float, max_ms: float) -> None:
    sock = bind(queue)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    rng = random.Random()

    def accept(packet_id: int) -> None:
        verdict = _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
        try:
            sock.send(_message(NFQNL_MSG_VERDICT, queue, verdict))
        except OSError:
            pass  # the packet is gone (queue flushed); nothing to release

    print("ready", flush=True)
    while True:
        data = await loop.sock_recv(sock, 1 << 16)
        for packet_id in packet_ids(data):
            loop.call_later(rng.uniform(min_ms, max_ms) / 1000, accept, packet_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", type=int, default=0)
    parser.add_argument("--min-ms", type=float, default=50)
    parser.add_argument("--max-ms", type=float, default=200)
    args = parser.parse_args()
    try:
        asyncio.run(delay(args.queue, args.min_ms, args.max_ms))
    except OSError as exc:
        sys.exit(f"delayer: cannot bind NFQUEUE {args.queue}: {exc}")


if __name__ == "__main__":
    main()
