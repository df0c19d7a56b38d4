"""Building the Delta a peer gets from one page of our change log: what it lacks, and what it should credit.

A delta leaves out what the receiver itself sent us, what it says it holds (`holds`, from its digest), and what
came from replicas it hears directly (`skip_direct`, for eager pushes: their own pushes bring it, so a full mesh
carries each change once, while a receiver cut off from the source still gets it through us). What is left out
is named in `covered`, and the receiver credits the range only once it holds those changes (watermarks.py), so
a source that dies mid-push loses nothing: anti-entropy, which never leaves out on the strength of
`skip_direct`, fills the gap.
"""
from __future__ import annotations

from typing import Mapping

from .changelog import Page
from .messages import Delta, RenewalUpdate


def page_delta(sender: str, page: Page, base: int, receiver: str, now_ms: int, direct: tuple[str, ...],
               skip_direct: frozenset[str] = frozenset(), holds: Mapping[str, int] | None = None) -> Delta:
    """The page as a Delta from `sender` (our replica id) to `receiver` (its replica id, "" if unknown), telling
    it which replicas reach us `direct`ly."""
    holds = holds or {}
    covered: dict[str, int] = {}

    def wanted(replica: str, seq: int) -> bool:
        if not replica:
            return True
        if replica == receiver:
            return False
        if replica in skip_direct or holds.get(replica, 0) >= seq:
            covered[replica] = max(covered.get(replica, 0), seq)
            return False
        return True

    records = [(seq, e.record) for seq, e in page.records
               if e.record is not None and wanted(e.record_from, e.record_from_seq)]
    renewals = tuple(RenewalUpdate(e.key, e.renewed, now_ms - e.anchor_ms, seq)
                     for seq, e in page.renewals if wanted(e.renewal_from, e.renewal_from_seq))
    return Delta(sender, base, page.upto, tuple(r for _, r in records), renewals,
                 tuple(seq for seq, _ in records), tuple(sorted(covered.items())), direct)
