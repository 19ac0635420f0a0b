"""Which sequence numbers of each device's epoch arrived, kept incrementally and bounded.

The consumer asks a device to replay the holes (a message the broker acknowledged and then
lost). Scanning every stored message for holes each second grows with the store; this keeps,
per (device, epoch), the received numbers as sorted disjoint ranges and updates them per
message. Bounded against a device sending scattered numbers: at most `max_epochs` epochs per
device (the newest: 16 covers a device restarted twice a day over the 7 days it keeps sent
messages for replay) and `max_ranges` ranges per epoch (past that the two lowest ranges are
joined, giving up on the oldest hole, which is logged by the caller via `dropped`).
"""

from __future__ import annotations

from bisect import bisect_right


class SequenceTracker:
    def __init__(self, max_epochs: int = 16, max_ranges: int = 1024) -> None:
        self.max_epochs = max_epochs
        self.max_ranges = max_ranges
        self._ranges: dict[str, dict[int, list[list[int]]]] = {}
        self._ends: dict[str, dict[int, int]] = {}  # device -> epoch -> its last seq (from a later birth)
        self.dropped = 0  # holes given up because of the bounds

    def _epoch(self, device: str, epoch: int) -> list[list[int]] | None:
        """The ranges of (device, epoch), made if new; None when older than the epochs kept."""
        epochs = self._ranges.setdefault(device, {})
        if epoch not in epochs:
            if len(epochs) >= self.max_epochs:
                oldest = min(epochs)
                if epoch < oldest:
                    return None
                del epochs[oldest]
                self._ends.get(device, {}).pop(oldest, None)
                self.dropped += 1
            epochs[epoch] = []
        return epochs[epoch]

    def add(self, device: str, epoch: int, seq: int) -> None:
        """Record that (device, epoch, seq) arrived."""
        ranges = self._epoch(device, epoch)
        if ranges is None:
            return
        i = bisect_right(ranges, [seq, float("inf")])  # first range starting after seq
        if i > 0 and ranges[i - 1][1] >= seq - 1:  # touches or covers the range before
            prev = ranges[i - 1]
            prev[1] = max(prev[1], seq)
            if i < len(ranges) and ranges[i][0] <= prev[1] + 1:
                prev[1] = max(prev[1], ranges.pop(i)[1])
        elif i < len(ranges) and ranges[i][0] <= seq + 1:
            ranges[i][0] = seq
        else:
            ranges.insert(i, [seq, seq])
        if len(ranges) > self.max_ranges:
            first = ranges.pop(0)
            ranges[0][0] = first[0]
            self.dropped += 1

    def expect_end(self, device: str, epoch: int, last_seq: int) -> None:
        """A device's later birth says `epoch` ended at `last_seq`: whatever of it has not
        arrived up to there is a hole too (otherwise a lost tail leaves no trace)."""
        if self._epoch(device, epoch) is not None:
            self._ends.setdefault(device, {})[epoch] = last_seq

    def holes(self) -> list[tuple[str, int, int, int]]:
        """(device, epoch, first_missing, last_missing) for every hole, numbering from 1."""
        out: list[tuple[str, int, int, int]] = []
        for device in sorted(self._ranges):
            for epoch, ranges in sorted(self._ranges[device].items()):
                expect = 1
                for lo, hi in ranges:
                    if lo > expect:
                        out.append((device, epoch, expect, lo - 1))
                    expect = hi + 1
                end = self._ends.get(device, {}).get(epoch)
                if end is not None and end >= expect:
                    out.append((device, epoch, expect, end))
        return out
