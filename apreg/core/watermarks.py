"""Per-origin watermarks: how much of each replica's log this replica holds, and whom each replica hears.

Anti-entropy costs a small constant when nothing differs because a digest carries, per origin replica, the log
sequence up to which we hold everything it wrote (`marks`): the peer answers with what follows. A delta moves
its sender's mark over the range it covers only when the range is contiguous with the mark and we hold what the
sender left out (`covered`: what it expects us to get from the source directly). `heard_ms` and `direct` tell
senders which replicas reach us directly, so a full mesh carries each change once (see `deltas.py`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

MAX_UNCREDITED = 64  # deltas per sender waiting to be credited to its watermark

Covered = tuple[tuple[str, int], ...]


@dataclass(slots=True)
class Watermarks:
    marks: dict[str, int] = field(default_factory=dict)  # replica id -> its log seq we hold all of
    heard_ms: dict[str, int] = field(default_factory=dict)  # replica id -> when a delta from it last arrived
    peer_direct: dict[str, frozenset[str]] = field(default_factory=dict)  # what each replica hears directly
    _uncredited: dict[str, list[tuple[int, int, Covered]]] = field(default_factory=dict)

    def heard(self, sender: str, direct: tuple[str, ...], now_ms: int) -> None:
        self.heard_ms[sender] = now_ms
        self.peer_direct[sender] = frozenset(direct)

    def direct(self, now_ms: int, window_ms: int) -> tuple[str, ...]:
        """Replicas whose deltas reached us recently, i.e. that do not need others to forward to us."""
        return tuple(sorted(r for r, at in self.heard_ms.items() if now_ms - at < window_ms))

    def credit(self, sender: str, base: int, upto: int, covered: Covered) -> None:
        """Move the sender's watermark over (base, upto] once it is contiguous and we hold what it left out.

        Deltas that cannot be credited yet (one before them is missing, or their source's own push has not
        arrived) wait, a bounded number per sender; whatever falls off is repaired by anti-entropy.
        """
        waiting = self._uncredited.setdefault(sender, [])
        waiting.append((base, upto, covered))
        del waiting[:-MAX_UNCREDITED]
        progressed = True
        while progressed:
            progressed = False
            for replica, entries in self._uncredited.items():
                mark = self.marks.get(replica, 0)
                for entry in sorted(entries):
                    start, end, left_out = entry
                    if end <= mark:
                        entries.remove(entry)
                    elif start <= mark and all(self.marks.get(s, 0) >= seq for s, seq in left_out):
                        self.marks[replica] = mark = end
                        entries.remove(entry)
                        progressed = True
        for replica in [r for r, entries in self._uncredited.items() if not entries]:
            del self._uncredited[replica]

    def forget_silent(self, now_ms: int, ttl_ms: int) -> None:
        """Old incarnations and long-gone peers: every digest would carry them forever."""
        for replica in [r for r, at in self.heard_ms.items() if now_ms - at >= ttl_ms]:
            del self.heard_ms[replica]
            self.peer_direct.pop(replica, None)
            self.marks.pop(replica, None)
            self._uncredited.pop(replica, None)
