"""The NFQUEUE delayer's nfnetlink framing, without a kernel: packets in, verdicts out (the suite runs it live)."""
from __future__ import annotations

import struct

from tests.faults import delayer


def packet(packet_id: int, seq: int) -> bytes:
    """An NFQNL_MSG_PACKET as the kernel sends it with metadata only: the packet header, then a mark."""
    attrs = delayer._attr(delayer.NFQA_PACKET_HDR, struct.pack("!IHB", packet_id, 0x0800, 1))
    attrs += delayer._attr(3, struct.pack("!I", 7))  # NFQA_MARK: another attribute to skip
    return delayer._message(delayer.NFQNL_MSG_PACKET, 0, attrs, flags=0, seq=seq)


def test_every_packet_id_of_a_batched_read_is_found() -> None:
    data = packet(41, 1) + packet(2**32 - 1, 2) + packet(7, 3)
    assert delayer.packet_ids(data) == [41, 2**32 - 1, 7]
    assert delayer.packet_ids(data[:-3]) == [41, 2**32 - 1]  # a truncated message is left alone


def test_a_verdict_names_the_queue_and_the_packet() -> None:
    verdict = delayer._message(delayer.NFQNL_MSG_VERDICT, 5, delayer._attr(
        delayer.NFQA_VERDICT_HDR, struct.pack("!II", delayer.NF_ACCEPT, 41)))
    length, kind, flags, _, _ = struct.unpack_from("=IHHII", verdict)
    assert length == len(verdict) == 16 + 4 + 12
    assert kind == (delayer.NFNL_SUBSYS_QUEUE << 8) | delayer.NFQNL_MSG_VERDICT and flags == delayer.NLM_F_REQUEST
    assert struct.unpack_from("!H", verdict, 18)[0] == 5  # the queue, big-endian
    assert delayer._attrs(verdict[20:]) == {delayer.NFQA_VERDICT_HDR: struct.pack("!II", delayer.NF_ACCEPT, 41)}
