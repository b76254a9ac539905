"""Per-second samples: buckets, percentiles, merging and incremental reading (pure)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from resilience_tests.load.samples import Sample, SampleReader, bucket, percentile, totals


def test_buckets_are_exact_below_100ms_and_two_digits_above() -> None:
    assert [bucket(v) for v in (0, 0.4, 7, 99.2)] == [0, 1, 7, 100]
    assert [bucket(v) for v in (100, 101, 999, 1000, 1234, 56789)] == [100, 110, 1000, 1000, 1300, 57000]
    assert all(bucket(v) >= v and bucket(v) <= v * 1.1 + 1 for v in range(1, 100_000, 37))


def test_percentiles_are_exact_to_the_bucket() -> None:
    hist = Counter({10: 90, 200: 9, 3000: 1})
    assert percentile(hist, 50) == 10 and percentile(hist, 90) == 10
    assert percentile(hist, 99) == 200 and percentile(hist, 99.9) == 3000
    assert percentile(Counter(), 99) is None


def test_workers_merge_into_one_second_and_failures_stay_placed() -> None:
    a, b = Sample(100), Sample(100)
    a.add(5)
    b.add(7, failed=True, t=100.25, name="GET /", reason="connection refused")
    a.merge(b)
    assert (a.requests, a.failures, a.reasons["connection refused"]) == (2, 1, 1)
    assert a.failed[0].t == 100.25
    assert Sample.from_json(json.loads(json.dumps(a.to_json()))) == a


def test_totals_of_a_window() -> None:
    samples = [Sample(t) for t in range(100, 110)]
    for s in samples:
        for _ in range(10):
            s.add(3)
    samples[5].add(9, failed=True, t=105.5, reason="HTTP 500")
    t = totals(samples, 104, 107)
    assert (t.seconds, t.requests, t.failures) == (3, 31, 1)
    assert t.failed[0].reason == "HTTP 500" and abs(t.error_rate - 1 / 31) < 1e-9


def test_reader_follows_a_growing_file_and_sees_the_end(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    reader = SampleReader(path)
    assert reader.poll() == []
    line = json.dumps(Sample(1, requests=3).to_json())
    path.write_text(line + "\n" + line[:10])  # a half-written line is not read yet
    assert [s.requests for s in reader.poll()] == [3]
    with open(path, "a") as handle:
        handle.write(line[10:] + "\n" + json.dumps({"done": 5.0, "complete": True}) + "\n")
    assert len(reader.poll()) == 1 and reader.done == {"done": 5.0, "complete": True}


def test_the_reader_merges_late_parts_into_their_second(tmp_path: Path) -> None:
    """A late answer is written as an `amends` line: it joins its second, never becomes a second sample."""
    path = tmp_path / "samples.jsonl"
    first = Sample(10, users=4, unanswered=2)
    for _ in range(3):
        first.add(5)
    late = Sample(10, amends=True, resolved=2)
    late.add(5000, failed=True, t=10.5, name="GET /", reason="timeout")
    late.add(4000, t=10.7)
    path.write_text("".join(json.dumps(s.to_json()) + "\n" for s in (first, Sample(11, users=4), late)))
    reader = SampleReader(path)
    reader.poll()
    assert [s.t for s in reader.samples] == [10, 11] and reader.last_second == 11
    merged = reader.samples[0]
    assert (merged.requests, merged.failures, merged.pending, merged.users) == (5, 1, 0, 4)


def test_seconds_missing_inside_the_load_are_counted_as_down() -> None:
    samples = [Sample(t, users=2) for t in (100, 101, 104, 105)]
    for s in samples:
        s.add(3)
    t = totals(samples, 100, 106)
    assert (t.seconds, t.up, t.down, t.missing, t.down_seconds) == (6, 4, 2, 2, (102, 103))
    assert totals(samples, 100, 110, through=107.5).missing == 4  # the load ran to 107.5 s; 106 and 107 missing
    assert totals(samples, 101.5, 102.5).seconds == 2  # seconds that overlap the window count whole
