"""Which samples of the dataset a run analyzes, found by a first pass that keeps no text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from ..report.contract import CoverageReport
from ..report.tally import Tally, Thresholds
from .readers import DatasetScan, Sample, chosen_indices, iter_samples, scan_dataset

if TYPE_CHECKING:
    from ..options import AnalyzeOptions


@dataclass
class DatasetPlan:
    """Which samples of the dataset a run analyzes (a random sample, then a shard), found by a first
    pass that checks every record and keeps no text; `stream()` then reads them one at a time."""

    data: Path
    opts: AnalyzeOptions
    scan: DatasetScan
    chosen: set[int] | None

    @classmethod
    def of(cls, data: str | Path, opts: AnalyzeOptions) -> DatasetPlan:
        scan = scan_dataset(data, opts.fields, encoding=opts.encoding, skip_bad_lines=opts.skip_bad_lines)
        return cls(Path(data), opts, scan, chosen_indices(scan.count, opts.sample, opts.seed))

    @property
    def drawn(self) -> int:
        """Samples drawn from the file (before sharding)."""
        return self.scan.count if self.chosen is None else len(self.chosen)

    @cached_property
    def analyzed(self) -> int:
        """Samples this run labels (its shard of the drawn ones); counted once."""
        if self.opts.shard is None:
            return self.drawn
        index, count = self.opts.shard
        pool = range(self.scan.count) if self.chosen is None else self.chosen
        return sum(1 for i in pool if i % count == index)

    def wanted(self, index: int, sharded: bool = True) -> bool:
        if self.chosen is not None and index not in self.chosen:
            return False
        return not (sharded and self.opts.shard) or index % self.opts.shard[1] == self.opts.shard[0]

    def stream(self, sharded: bool = True, only: set[int] | None = None) -> Iterator[Sample]:
        """The run's samples in file order (`only`: just those indices), one at a time."""
        for sample in iter_samples(self.data, self.opts.fields, encoding=self.opts.encoding, on_bad=_ignore):
            if (only is None or sample.index in only) and self.wanted(sample.index, sharded):
                yield sample

    def spread(self, k: int) -> list[Sample]:
        """k drawn samples evenly spread over the file, the same in every shard (taxonomy inference)."""
        pool = range(self.scan.count) if self.chosen is None else sorted(self.chosen)
        step = max(1.0, len(pool) / k)
        picks = {pool[int(i * step)] for i in range(min(k, len(pool)))}
        return list(self.stream(sharded=False, only=picks))

    def report(self, tally: Tally, thresholds: Thresholds, decided: dict[str, float] | None = None,
               texts: dict[int, str] | None = None) -> CoverageReport:
        """The report of this run's tally, with its representative examples read back from the file
        (or taken from `texts`, instructions by index, when the caller read them already)."""
        chosen = tally.representatives()
        texts = texts if texts is not None else self.texts(set(chosen.values()))
        examples = {name: texts[i] for name, i in chosen.items() if i in texts}
        return tally.report(self.analyzed, thresholds, examples, decided=decided)

    def texts(self, indices: set[int]) -> dict[int, str]:
        """The instructions of these samples, read in one pass."""
        return {s.index: s.instruction for s in self.stream(only=indices)} if indices else {}

    def facts(self) -> dict:
        return {
            "dataset": str(self.data.resolve()),
            "shape": self.scan.shape,
            "samples_in_file": self.scan.count,
            "skipped_records": self.scan.skipped,
            "sample_size": self.opts.sample,
            "seed": self.opts.seed,
            "fields": [self.opts.fields.instruction, self.opts.fields.response],
            "encoding": self.opts.encoding,
            "encoding_read": self.scan.encoding or None,
            "duplicate_samples": self.scan.duplicates,
            "content_digest": self.scan.content_digest,
        }


def _ignore(_exc) -> None:
    """Bad records were reported (or allowed to be skipped) by the first pass."""


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items from any iterable (the last may be shorter)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
