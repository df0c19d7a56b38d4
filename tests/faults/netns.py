"""Three hosts in network namespaces on one bridge, and the faults a network can have between them.

Each node runs in its own namespace (apf1..apf3, 10.77.0.1-3); the bridge lives in the root namespace with
10.77.0.254, where the workload's clients and the checker run, so faults cut node-to-node traffic and leave
clients free to renew wherever they can (what a partition of a registry looks like). Faults are iptables rules
inside the node namespaces: DROP for partitions (both ways, or one way), the `statistic` match for packet loss,
and NFQUEUE for delay and reordering: this kernel has no `sch_netem`, so a delayer (delayer.py) in each node's
namespace takes the queued packets and lets each through after its own random delay.
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "apfbr0"
SUBNET = "10.77.0"
QUEUE = 0  # the NFQUEUE number the delayers bind, in each namespace
ROOT = Path(__file__).resolve().parents[2]


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class Host:
    index: int  # 1..n

    @property
    def ns(self) -> str:
        return f"apf{self.index}"

    @property
    def ip(self) -> str:
        return f"{SUBNET}.{self.index}"

    def iptables(self, *rule: str) -> None:
        sh("ip", "netns", "exec", self.ns, "iptables", *rule)


class Network:
    def __init__(self, size: int) -> None:
        self.hosts = [Host(i) for i in range(1, size + 1)]
        self.delayers: list[subprocess.Popen[str]] = []

    def create(self) -> None:
        self.destroy()
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{SUBNET}.254/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for host in self.hosts:
            sh("ip", "netns", "add", host.ns)
            sh("ip", "link", "add", f"apfv{host.index}", "type", "veth", "peer", "name", "eth0", "netns", host.ns)
            sh("ip", "link", "set", f"apfv{host.index}", "master", BRIDGE, "up")
            for argv in (("ip", "addr", "add", f"{host.ip}/24", "dev", "eth0"), ("ip", "link", "set", "eth0", "up"),
                         ("ip", "link", "set", "lo", "up")):
                sh("ip", "netns", "exec", host.ns, *argv)

    def destroy(self) -> None:
        for host in self.hosts:
            sh("ip", "netns", "del", host.ns, check=False)
            sh("ip", "link", "del", f"apfv{host.index}", check=False)
        sh("ip", "link", "del", BRIDGE, check=False)

    def heal(self) -> None:
        for host in self.hosts:
            host.iptables("-F", "INPUT")
        if self.delayers:
            time.sleep(0.25)  # what the delayers hold (at most 200 ms) goes through before they stop
        for delayer in self.delayers:
            delayer.kill()
            delayer.wait()
        self.delayers = []

    def partition(self, *groups: list[int]) -> None:
        """Nodes in different groups cannot reach each other (both ways)."""
        group_of = {i: g for g, members in enumerate(groups) for i in members}
        for host in self.hosts:
            for other in self.hosts:
                if other is not host and group_of.get(other.index) != group_of.get(host.index):
                    host.iptables("-A", "INPUT", "-s", other.ip, "-j", "DROP")

    def one_way(self, blocked_from: int, at: int) -> None:
        """Host `at` drops what `blocked_from` sends it; the other direction still works."""
        self.hosts[at - 1].iptables("-A", "INPUT", "-s", self.hosts[blocked_from - 1].ip, "-j", "DROP")

    def lossy(self, probability: float) -> None:
        """Every node drops this share of what other nodes send it (not the clients' traffic)."""
        for host in self.hosts:
            host.iptables("-A", "INPUT", "-s", f"{SUBNET}.254", "-j", "ACCEPT")  # the clients
            host.iptables("-A", "INPUT", "-s", f"{SUBNET}.0/24", "-m", "statistic", "--mode", "random",
                          "--probability", str(probability), "-j", "DROP")

    def delayed(self, loss: float, min_ms: int, max_ms: int) -> None:
        """Like `lossy`, and every node-to-node packet that survives is held for a random min_ms-max_ms by a
        delayer in the receiving namespace (so packets also overtake each other). `--queue-bypass` lets packets
        through undelayed rather than dropped should a delayer die."""
        for host in self.hosts:
            delayer = subprocess.Popen(["ip", "netns", "exec", host.ns, sys.executable, "-m", "tests.faults.delayer",
                                        "--queue", str(QUEUE), "--min-ms", str(min_ms), "--max-ms", str(max_ms)],
                                       cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self.delayers.append(delayer)
            assert delayer.stdout is not None
            ready = delayer.stdout.readline().strip()
            if ready != "ready":
                raise RuntimeError(f"NFQUEUE delayer in {host.ns} did not start: {ready or delayer.wait()}")
        self.lossy(loss)
        for host in self.hosts:
            host.iptables("-A", "INPUT", "-s", f"{SUBNET}.0/24", "-j", "NFQUEUE", "--queue-num", str(QUEUE),
                          "--queue-bypass")
