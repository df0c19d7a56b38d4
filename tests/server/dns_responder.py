"""A tiny authoritative DNS server for tests: real UDP and TCP sockets on 127.0.0.1, answers the test can change.

`srv[name]` lists (target, port) for SRV queries; a name not in it gets NXDOMAIN. `truncate` answers every UDP
query with the TC bit and no records (the client must ask again over TCP); `silent` drops every query.
"""
from __future__ import annotations

import asyncio
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsResponder:
    def __init__(self) -> None:
        self.srv: dict[str, list[tuple[str, int]]] = {}
        self.truncate = False
        self.silent = False
        self.udp_queries = 0
        self.tcp_queries = 0
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def start(self) -> "DnsResponder":
        responder = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                responder.udp_queries += 1
                reply = responder._answer(data, udp=True)
                if reply is not None:
                    self.transport.sendto(reply, addr)  # type: ignore[attr-defined]

        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._serve_tcp, "127.0.0.1", 0)
        self.port = self._tcp.sockets[0].getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", self.port))
        return self

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # RFC 1035 4.2.2: each message behind a two-byte length
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(length)
                self.tcp_queries += 1
                reply = self._answer(data, udp=False)
                if reply is not None:
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, data: bytes, udp: bool) -> bytes | None:
        if self.silent:
            return None
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        if name not in self.srv:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif udp and self.truncate:
            response.flags |= dns.flags.TC
        elif question.rdtype == dns.rdatatype.SRV and self.srv[name]:  # an empty list: the name, no records
            records = [f"0 10 {port} {target}." for target, port in self.srv[name]]
            response.answer.append(dns.rrset.from_text_list(question.name, 5, dns.rdataclass.IN,
                                                            dns.rdatatype.SRV, records))
        return response.to_wire()
