"""`POST .../peerreplication/batch/`: what Java Eureka peers send (see eureka_peers.py)."""
from __future__ import annotations

import logging

from aiohttp import web

from apreg.eureka import replication
from apreg.eureka.codec import CodecError

from .errors import read_body
from .eureka_peers import apply_item
from .node import Node

log = logging.getLogger("apreg.eureka_peers")


class EurekaPeerApi:
    def __init__(self, node: Node) -> None:
        self.node = node

    def add_routes(self, app: web.Application) -> None:
        for prefix in ("/eureka", "/eureka/v2"):
            for path in ("/peerreplication/batch", "/peerreplication/batch/"):
                app.router.add_post(prefix + path, self.batch)

    async def batch(self, request: web.Request) -> web.Response:
        """Every item applied and answered on its own: one bad item never fails the batch (400 for it)."""
        node = self.node
        body = await read_body(request, node.settings.max_peer_body_bytes)
        now = node.now_ms()
        answers = []
        counts: dict[tuple[str, int], int] = {}
        for item in replication.parse_batch(body, now):
            if isinstance(item, CodecError):
                node.rejected.peer += 1
                log.info("refused a replication item from %s: %s", request.remote, item)
                answer, action = replication.Answer(item.http_status), "invalid"
            else:
                answer = node.write(lambda replica, now: apply_item(replica, item, now), now)
                action = item.action.value
            answers.append(answer)
            counts[(action, answer.status)] = counts.get((action, answer.status), 0) + 1
        node.metrics.count_eureka_items(counts)
        # On disk before the answer, as a client's write; not held for our peers: a Java peer gives up on a batch
        # after 200 ms and would only send it again.
        await node.acknowledgeable(replicas=False)
        return web.Response(body=replication.render_answers(answers), content_type="application/json")
