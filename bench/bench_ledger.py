"""Benchmark the lifecycle ledger: append throughput (one transaction per event vs `Ledger.batch()`), full verify on
reopen, and trace + verify of a depth-1,000 chain.

Anchors, measured in the same run on the same machine: raw `sqlite3` inserts of the same rows into the same schema
(no validation, no hashing) and raw `SELECT`s for the same trace walk. The ratio says what the ledger's validation,
canonical JSON and SHA-256 cost on top of SQLite itself.

    python bench/bench_ledger.py [--events 100000] [--depth 1000]
"""
import argparse
import hashlib
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from ml_provenance.provenance.ledger import _SCHEMA, DatasetRecord, Ledger, TrainingRecord


def ours(n, depth, batched, d):
    led = Ledger(d)
    t0 = time.perf_counter()
    if batched:
        last = None
        for start in range(0, n, 10_000):  # one transaction (one fsync) per 10k events
            with led.batch():
                last = _append_range(led, start, min(n, start + 10_000), depth, last)
    else: last = _append_range(led, 0, n, depth, None)
    t_append = time.perf_counter() - t0
    led.close()
    return t_append, last


def _append_range(led, lo, hi, depth, prev):
    "Chains of `depth` events: a training root, then datasets each derived from the previous event."
    for i in range(lo, hi):
        if i % depth == 0: prev = led.record_training(TrainingRecord(f"run-{i}", "gpt2-tiny", "v1", {"lr": 3e-4, "epochs": 3}))
        else: prev = led.record_dataset(DatasetRecord(f"shard-{i}", "1", hashlib.sha256(str(i).encode()).hexdigest(), i, prev))
    return prev


def anchor_append(n, batched, d):
    "Raw sqlite3: same schema and pragmas, rows with fake hashes, no validation or canonical JSON."
    db = sqlite3.connect(Path(d) / "raw.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
    for s in _SCHEMA: db.execute(s)
    row = lambda i: (i + 1, f"{i:064x}", "dataset", '{"name":"shard"}', "[]", "2026-01-01T00:00:00", "0" * 64, "0" * 64)
    t0 = time.perf_counter()
    if batched:
        for start in range(0, n, 10_000):
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", (row(i) for i in range(start, min(n, start + 10_000))))
            db.execute("COMMIT")
    else:
        for i in range(n):
            db.execute("BEGIN IMMEDIATE"); db.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", row(i)); db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return dt


def anchor_walk(d, h):
    "Raw SELECTs following the same parents, no hashing: the floor for a trace."
    db = sqlite3.connect(Path(d) / "ledger.sqlite")
    t0, k = time.perf_counter(), 0
    todo = [h]
    while todo:
        row = db.execute("SELECT parents FROM events WHERE hash=?", (todo.pop(),)).fetchone()
        todo.extend(json.loads(row[0])); k += 1
    dt = time.perf_counter() - t0
    db.close()
    return dt, k


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--depth", type=int, default=1_000)
    a = ap.parse_args()
    n, depth, rows = a.events, a.depth, []
    with tempfile.TemporaryDirectory() as single, tempfile.TemporaryDirectory() as batch, \
            tempfile.TemporaryDirectory() as raw1, tempfile.TemporaryDirectory() as raw2:
        t_single, _ = ours(n, depth, False, single)
        r_single = anchor_append(n, False, raw1)
        t_batch, last = ours(n, depth, True, batch)
        r_batch = anchor_append(n, True, raw2)
        rows += [("append, 1 transaction/event", n, t_single, r_single), ("append, batch() of 10k", n, t_batch, r_batch)]
        t0 = time.perf_counter(); led = Ledger(batch); t_open = time.perf_counter() - t0  # reopen = full verify
        assert len(led) == n
        t0 = time.perf_counter(); tr = led.trace(last); t_trace = time.perf_counter() - t0
        t0 = time.perf_counter(); r = led.verify(last); t_verify = time.perf_counter() - t0
        assert r and len(tr) == depth and r.checked == depth, (r, len(tr))
        t_walk, k = anchor_walk(batch, last)
        assert k == depth
        rows += [(f"reopen (verify all {n})", n, t_open, None), (f"trace depth {depth}", depth, t_trace, t_walk),
                 (f"verify(h) depth {depth}", depth, t_verify, t_walk)]
        s = Ledger(single, verify=False)
        assert len(s) == n and s.verify()
    print(f"ledger benchmark: {n} events, chains of depth {depth}, SQLite WAL synchronous=FULL")
    print(f"{'operation':<30} {'events':>8} {'seconds':>9} {'events/s':>10} {'anchor s':>9} {'ratio':>7}")
    for name, k, t, anc in rows:
        anc_s, ratio = ("-", "-") if anc is None else (f"{anc:.3f}", f"{t / anc:.1f}x")
        print(f"{name:<30} {k:>8} {t:>9.3f} {k / t:>10.0f} {anc_s:>9} {ratio:>7}")
    print("anchor = raw sqlite3 (same schema/pragmas, no validation or hashing); ratio = ledger / anchor")


if __name__ == "__main__":
    main()
