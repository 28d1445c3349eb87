"""Lifecycle ledger: seed example, golden vectors, DAG parents, tampering, concurrency, kill -9, fuzzing,
encryption at rest, signed head."""
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_provenance.cli import run as cli_run
from ml_provenance.provenance.errors import DecryptionError, KeyFileError, LedgerError
from ml_provenance.provenance.ledger import (EVENT_TYPES, GENESIS, HEAD_SIG_NAME, DatasetRecord, DeploymentRecord,
                                             EvaluationRecord, HeadCheck, Ledger, PredictionRecord, TrainingRecord,
                                             VerifyResult, canonical_json, event_hash, is_encrypted_ledger, link_hash)

SEED_TRAINING = dict(run_id="run-001", model_name="llama-3-8b", model_version="v1.0.0",
                     hyperparameters={"lr": "3e-4", "epochs": "3"})


# ---------------------------------------------------------------- seed example and golden vectors
def test_seed_go_example(tmp_path):
    t = Ledger(tmp_path)
    train_hash = t.record_training(TrainingRecord(**SEED_TRAINING))
    data_hash = t.record_dataset(DatasetRecord(name="wiki-en", version="2024-03", parent_id=train_hash))
    eval_hash = t.record_evaluation(EvaluationRecord(parent_id=train_hash, metrics={"loss": 0.42, "accuracy": 0.91}))
    events = t.trace(eval_hash)
    assert [e.type for e in events] == ["evaluation", "training"]
    assert [e.hash for e in events] == [eval_hash, train_hash]
    assert [e.type for e in t.trace(data_hash)] == ["dataset", "training"]
    ok = t.verify(eval_hash)
    assert ok and ok.checked == 2 and ok.first_bad is None
    assert [e.hash for e in t.events()] == [train_hash, data_hash, eval_hash]
    assert t.events()[1].payload == {"name": "wiki-en", "version": "2024-03", "checksum": "", "num_rows": 0}
    t.close()
    again = Ledger(tmp_path)  # survives a restart, and reopening verifies
    assert [e.hash for e in again.events()] == [train_hash, data_hash, eval_hash] and again.verify()


def test_golden_vectors():
    # Checked independently with `printf '<preimage>' | sha256sum`; these must never change.
    pre = (b'ml_provenance/ledger/event/v1\n{"parents":[],"payload":{"hyperparameters":{"epochs":"3","lr":"3e-4"},'
           b'"model_name":"llama-3-8b","model_version":"v1.0.0","run_id":"run-001"},"type":"training"}')
    import hashlib
    h = hashlib.sha256(pre).hexdigest()
    assert h == "d4f037dc052c28a7ab2147ae730f736554cf71cb4f14de367b25f2ed562b5a51"
    assert event_hash("training", SEED_TRAINING) == h
    assert link_hash(1, h, GENESIS, "2026-01-01T00:00:00.000000+00:00") == \
        "75d9a78a90b7f61ca0212f6acafcf19dda1261559a4f8ee54e7fb53ae6698e4c"
    assert event_hash("evaluation", {"metrics": {"loss": 0.42, "accuracy": 0.91}, "dataset": "", "split": ""}, [h]) == \
        "527af1aa6e7c9c097f6372274eeaf8759f50c0b9f1ad6612c6d0b665f95109ce"


def test_canonical_serialisation_is_pinned():
    assert canonical_json({"z": 0.1, "a": [1, 1.0, -0.0, 1e-07, 1e16, 2**70], "ü": "日本", "t": True, "n": None}) == \
        '{"a":[1,1.0,-0.0,1e-07,1e+16,1180591620717411303424],"n":null,"t":true,"z":0.1,"ü":"日本"}'.encode()
    assert canonical_json((1, 2)) == canonical_json([1, 2]) == b"[1,2]"
    assert canonical_json({"a": "\n\""}) == b'{"a":"\\n\\""}'
    for bad in [float("nan"), float("inf"), {1: "x"}, {"a": b"bytes"}, {"s": {1, 2}}, "\ud800"]:
        with pytest.raises(LedgerError):
            canonical_json(bad)


# ---------------------------------------------------------------- DAG
def test_multiple_parents_and_ids(tmp_path):
    t = Ledger(tmp_path)
    tr = t.record_training(TrainingRecord("r1", "gpt2-tiny", "v1", {"lr": 3e-4}))
    ds = t.record_dataset(DatasetRecord("corpus", "1", checksum="sha256:ab", num_rows=12))
    ev = t.record_evaluation(EvaluationRecord([tr, ds], {"loss": 2.0}, dataset="corpus", split="validation"))
    assert ev == event_hash("evaluation", {"metrics": {"loss": 2.0}, "dataset": "corpus", "split": "validation"}, [ds, tr])
    assert {e.hash for e in t.trace(ev)} == {ev, tr, ds}
    assert t.get(ev).parents == tuple(sorted([tr, ds]))
    # same fact, parents listed in another order or repeated: same id, nothing appended
    assert t.record_evaluation(EvaluationRecord([ds, tr, ds], {"loss": 2.0}, "corpus", "validation")) == ev
    assert len(t) == 3
    dep = t.record_deployment(DeploymentRecord("ab" * 32, "artifacts/deploy", "deploy", parent_id=ev, details={"ok": 1}))
    pr = t.record_prediction(PredictionRecord("01" * 32, "02" * 32, "ab" * 32, "safe", parent_id=[dep, tr]))
    assert isinstance(t.get(pr).payload["timestamp"], str)  # filled at record time
    assert [e.type for e in t.trace(pr)] == ["prediction", "deployment", "evaluation", "dataset", "training"]
    assert t.verify(pr).checked == 5 and t.verify().checked == 5
    df = t.events_df()
    assert list(df.columns[:3]) == ["seq", "hash", "type"] and list(df.seq) == [1, 2, 3, 4, 5]
    fig = t.plot()
    assert fig.axes[0].get_title() == "lifecycle ledger: 5 events"
    assert len(t.plot(ev).axes[0].collections) == 3


def test_refusals_are_typed(tmp_path):
    t = Ledger(tmp_path)
    tr = t.record_training(TrainingRecord(**SEED_TRAINING))
    with pytest.raises(LedgerError, match="unknown parent"):
        t.record_dataset(DatasetRecord("d", "1", parent_id="e" * 64))
    with pytest.raises(LedgerError, match="unknown event type"):
        t.record_event("finetune", {"x": 1}, tr)
    with pytest.raises(LedgerError, match="expected a TrainingRecord"):
        t.record_training(DatasetRecord("d", "1"))
    with pytest.raises(LedgerError, match="unknown field"):
        t.record_event("dataset", {"name": "d", "version": "1", "rows": 3})
    with pytest.raises(LedgerError, match="unknown event"):
        t.trace("0" * 64)
    assert t.record_event("dataset", {"name": "d", "version": "1"}, [tr]) == \
        t.record_dataset(DatasetRecord("d", "1", parent_id=tr))
    assert len(t) == 2
    (tmp_path / "file").write_text("x")
    with pytest.raises(LedgerError, match="is a file"):
        Ledger(tmp_path / "file")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "ledger.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(LedgerError, match="not a usable ledger"):
        Ledger(junk)


def test_batch_is_all_or_nothing(tmp_path):
    t = Ledger(tmp_path)
    with t.batch():
        a = t.record_training(TrainingRecord("r1", "m", "v1"))
        b = t.record_dataset(DatasetRecord("d", "1", parent_id=a))  # a hash from the same batch is a valid parent
    assert len(t) == 2
    with pytest.raises(LedgerError):
        with t.batch():
            t.record_training(TrainingRecord("r2", "m", "v1"))
            t.record_dataset(DatasetRecord("d2", "1", parent_id="f" * 64))
    assert len(t) == 2 and t.verify() and [e.hash for e in t.events()] == [a, b]


# ---------------------------------------------------------------- tampering, directly in the store file
def _chain(path, n=6):
    "A linear chain training <- dataset <- evaluation ... of `n` events; returns their hashes."
    t = Ledger(path)
    hs = [t.record_training(TrainingRecord("r", "m", "v1", {"lr": 0.1}))]
    for i in range(1, n):
        hs.append(t.record_evaluation(EvaluationRecord(hs[-1], {"step": i, "loss": 1 / i})))
    t.close()
    return hs


def _sql(path, *stmts):
    db = sqlite3.connect(path / "ledger.sqlite")
    db.execute("DROP TRIGGER IF EXISTS events_no_update")
    db.execute("DROP TRIGGER IF EXISTS events_no_delete")
    for s in stmts:
        db.execute(*s) if isinstance(s, tuple) else db.execute(s)
    db.commit()
    db.close()


TAMPERING = {
    "edit payload": (["UPDATE events SET payload=replace(payload, '\"step\":2', '\"step\":3') WHERE seq=3"], 3, "hash"),
    "edit parent": ([("UPDATE events SET parents=(SELECT json_array(hash) FROM events WHERE seq=1) WHERE seq=4",)],
                    4, "hash"),
    "edit hash column": (["UPDATE events SET hash='" + "a" * 64 + "' WHERE seq=3"], 3, "hash"),
    "edit timestamp": (["UPDATE events SET recorded_at='2020-01-01T00:00:00.000000+00:00' WHERE seq=2"], 2, "link"),
    "reorder": (["UPDATE events SET seq=-1 WHERE seq=3", "UPDATE events SET seq=3 WHERE seq=4",
                 "UPDATE events SET seq=4 WHERE seq=-1"], 3, "chain link"),
    "delete middle": (["DELETE FROM events WHERE seq=3"], 4, "missing"),
    "delete first": (["DELETE FROM events WHERE seq=1"], 2, "missing"),
    "unknown type": (["UPDATE events SET type='finetune' WHERE seq=5"], 5, "unknown event type"),
    "payload not json": (["UPDATE events SET payload='{' WHERE seq=2"], 2, "not JSON"),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_tampering_is_detected_at_first_bad_event(tmp_path, kind):
    stmts, first_bad, reason = TAMPERING[kind]
    hs = _chain(tmp_path)
    _sql(tmp_path, *stmts)
    with pytest.raises(LedgerError, match=f"damaged at event #{first_bad}") as e:
        Ledger(tmp_path)  # reopening verifies
    assert e.value.result.first_bad_seq == first_bad
    t = Ledger(tmp_path, verify=False)
    r = t.verify()
    assert isinstance(r, VerifyResult) and not r and r.ok is False and r["first_bad_seq"] == first_bad
    assert reason in r.reason, r.reason
    if kind != "edit hash column":  # the stored hash column itself is what was replaced
        assert r.first_bad == hs[first_bad - 1] or kind == "reorder"
    tip = t.verify(hs[-1])  # the trace of the newest event crosses the damage
    assert not tip
    if kind != "edit hash column":  # there the trace cannot find #3 at all and stops at its child, #4
        assert tip.first_bad_seq == first_bad, (tip, first_bad)
    assert cli_run(["ledger", "verify", "--path", str(tmp_path)]) == 1


def test_spliced_chain_is_detected(tmp_path):
    # A careful attacker deletes #3, renumbers the rows after it and recomputes their links from their stored `prev`:
    # every row is then self-consistent, only the chain to the previous row is broken.
    _chain(tmp_path)
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    db.execute("DROP TRIGGER events_no_update")
    db.execute("DROP TRIGGER events_no_delete")
    db.execute("DELETE FROM events WHERE seq=3")
    for seq, h, prev, ts in db.execute("SELECT seq, hash, prev, recorded_at FROM events WHERE seq>3 ORDER BY seq").fetchall():
        db.execute("UPDATE events SET seq=?, link=? WHERE seq=?", (seq - 1, link_hash(seq - 1, h, prev, ts), seq))
    db.commit()
    db.close()
    r = Ledger(tmp_path, verify=False).verify()
    assert not r and r.first_bad_seq == 3 and "chain link" in r.reason, r


def test_stored_cycle_is_detected(tmp_path):
    hs = _chain(tmp_path, 5)
    # make event #2 name its own descendant #5 as a parent: a cycle 2 <- 3 <- 4 <- 5 <- 2
    _sql(tmp_path, (f"UPDATE events SET parents='[\"{hs[4]}\"]' WHERE seq=2",))
    t = Ledger(tmp_path, verify=False)
    r = t.verify()
    assert not r and r.first_bad_seq == 2
    with pytest.raises(LedgerError, match="cycle"):
        t.trace(hs[4])  # terminates, and refuses
    assert t.verify(hs[4]).first_bad_seq == 2
    # even with the hash column recomputed for the edited row, the cycle is still reported at #2
    _sql(tmp_path, (f"UPDATE events SET hash='{event_hash('evaluation', t.get(hs[1]).payload, [hs[4]])}' WHERE seq=2",))
    r = Ledger(tmp_path, verify=False).verify()
    assert not r and r.first_bad_seq == 2


def test_cli(tmp_path, capsys):
    hs = _chain(tmp_path, 3)
    assert cli_run(["ledger", "show", "--path", str(tmp_path)]) == 0
    assert cli_run(["ledger", "verify", "--path", str(tmp_path)]) == 0
    assert cli_run(["ledger", "trace", hs[2][:12], "--path", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert hs[0][:16] in out and "VerifyResult(ok, 3 events" in out
    assert cli_run(["ledger", "trace", "--path", str(tmp_path)]) == 2
    assert cli_run(["ledger", "trace", "f" * 64, "--path", str(tmp_path)]) == 2
    assert cli_run(["ledger", "verify", "--path", str(tmp_path / "nowhere")]) == 2
    assert not (tmp_path / "nowhere").exists()  # reading never creates a ledger


# ---------------------------------------------------------------- concurrency and crashes
def _writer(args):
    path, tag, n = args
    t = Ledger(path)
    hs = [t.record_training(TrainingRecord(f"{tag}-0", "m", "v1"))]
    for i in range(1, n):
        hs.append(t.record_dataset(DatasetRecord(f"{tag}-{i}", "1", parent_id=hs[-1])))
    t.close()
    return hs


def test_two_processes_append_concurrently(tmp_path):
    Ledger(tmp_path).close()
    with mp.get_context("fork").Pool(2) as pool:
        a, b = pool.map(_writer, [(str(tmp_path), "A", 200), (str(tmp_path), "B", 200)])
    t = Ledger(tmp_path)  # verifies
    assert len(t) == 400 and len(set(a) | set(b)) == 400
    assert {e.hash for e in t.events()} == set(a) | set(b)
    assert [e.seq for e in t.events()] == list(range(1, 401))
    assert len(t.trace(a[-1])) == 200 and t.verify(b[-1]).checked == 200
    seqs_a = [t.get(h).seq for h in a]
    assert seqs_a == sorted(seqs_a)


_CRASH_CHILD = """
import sys
from ml_provenance.provenance.ledger import Ledger, TrainingRecord, DatasetRecord
t = Ledger(sys.argv[1])
k = int(sys.argv[2])
print("ready", flush=True)
i = 0
while True:
    i += 1
    if i % 3:
        t.record_training(TrainingRecord(f"run-{k}-{i}", "m", "v1"))
    else:
        with t.batch():
            root = t.record_training(TrainingRecord(f"batch-{k}-{i}", "m", "v1"))
            for j in range(4):
                t.record_dataset(DatasetRecord(f"batch-{k}-{i}-{j}", "1", parent_id=root))
"""


def test_kill_9_at_random_points(tmp_path):
    rng = random.Random(1234)
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before = 0
    for k in range(30):
        p = subprocess.Popen([sys.executable, "-c", _CRASH_CHILD, str(tmp_path), str(k)], stdout=subprocess.PIPE,
                             env=env, text=True)
        if k % 2:
            time.sleep(rng.uniform(0.0, 0.3))  # may land while starting, creating or opening+verifying the ledger
        else:
            assert p.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.05))  # while appending
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        t = Ledger(tmp_path)  # always opens and verifies: old or new state
        evs = t.events()
        assert len(evs) >= before
        before = len(evs)
        batches = {}
        for e in evs:  # batches are all or nothing: a batch root always has its 4 datasets
            name = e.payload.get("run_id") or e.payload["name"]
            if name.startswith("batch-"):
                batches.setdefault("-".join(name.split("-")[:3]), []).append(e)
        assert all(len(v) == 5 for v in batches.values()), {k: len(v) for k, v in batches.items()}
        t.close()
    assert before > 0


_CRASH_CHILD_NORMAL = """
import sys
from ml_provenance.provenance.ledger import Ledger, TrainingRecord, DatasetRecord, PredictionRecord
t = Ledger(sys.argv[1], durability="normal")
k = int(sys.argv[2])
root = t.record_training(TrainingRecord(f"root-{k}", "m", "v1"))
print("ready", root, flush=True)
i = 0
while True:
    i += 1
    if i % 4:
        h = t.record_prediction(PredictionRecord(f"{k:02d}{i:062d}", "02" * 32, "ab" * 32, "safe", parent_id=root))
        print("ack", h, flush=True)  # acknowledged: record_prediction returned
    else:
        with t.batch():
            b = t.record_training(TrainingRecord(f"batch-{k}-{i}", "m", "v1"))
            hs = [b] + [t.record_dataset(DatasetRecord(f"batch-{k}-{i}-{j}", "1", parent_id=b)) for j in range(4)]
        print("ack", *hs, flush=True)
"""


def test_kill_9_with_durability_normal_keeps_every_acknowledged_event(tmp_path):
    # synchronous=NORMAL gives up durability on OS crash / power loss only: a killed *process* loses nothing it
    # was told was committed, and the store is never left corrupt
    rng = random.Random(4321)
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    acked, before = set(), 0
    for k in range(10):
        p = subprocess.Popen([sys.executable, "-c", _CRASH_CHILD_NORMAL, str(tmp_path), str(k)],
                             stdout=subprocess.PIPE, env=env, text=True)
        first = p.stdout.readline().split()
        assert first[0] == "ready"
        time.sleep(rng.uniform(0.0, 0.1))  # while appending
        p.send_signal(signal.SIGKILL)
        p.wait()
        lines = [first] + [ln.split() for ln in p.stdout.read().splitlines()]
        p.stdout.close()
        new = {h for ln in lines for h in ln[1:]}
        assert len(new) >= 1
        acked |= new
        t = Ledger(tmp_path)  # opens and verifies (default durability "full")
        evs = t.events()
        stored = {e.hash for e in evs}
        assert acked <= stored, f"trial {k}: {len(acked - stored)} acknowledged event(s) lost"
        assert len(evs) >= before and bool(t.verify())
        before = len(evs)
        batches = {}
        for e in evs:  # batches are still all or nothing
            name = e.payload.get("run_id") or e.payload.get("name") or ""
            if name.startswith("batch-"):
                batches.setdefault("-".join(name.split("-")[:3]), []).append(e)
        assert all(len(v) == 5 for v in batches.values()), {k: len(v) for k, v in batches.items()}
        t.close()
    assert len(acked) > 10


def test_durability_is_per_connection_and_validated(tmp_path):
    fast, safe = Ledger(tmp_path, durability="normal"), Ledger(tmp_path)
    sync = lambda led: led._db.execute("PRAGMA synchronous").fetchone()[0]  # noqa: E731
    assert (sync(fast), sync(safe), fast.durability, safe.durability) == (1, 2, "normal", "full")
    h = fast.record_training(TrainingRecord(**SEED_TRAINING))
    assert h in safe and bool(safe.verify())
    with pytest.raises(LedgerError, match="durability must be one of"): Ledger(tmp_path, durability="OFF")
    with pytest.raises(LedgerError, match="durability must be one of"): safe.durability = None
    assert safe.durability == "full" and sync(safe) == 2  # a refused change leaves the connection as it was
    with fast.batch(), pytest.raises(LedgerError, match="inside a batch"): fast.durability = "full"
    fast.durability = "full"
    assert sync(fast) == 2
    fast.close(); safe.close()


# ---------------------------------------------------------------- fuzzing: malformed input -> only LedgerError
_hex = st.text("0123456789abcdef", min_size=64, max_size=64)
_junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.binary(max_size=8),
                  _hex, st.lists(st.one_of(_hex, st.text(max_size=5), st.integers()), max_size=3),
                  st.dictionaries(st.one_of(st.text(max_size=5), st.integers()),
                                  st.one_of(st.floats(), st.text(max_size=5), st.none(), st.sets(st.integers())),
                                  max_size=3),
                  st.builds(object))
_FIELDS = {"training": ["run_id", "model_name", "model_version", "hyperparameters"],
           "dataset": ["name", "version", "checksum", "num_rows", "parent_id"],
           "evaluation": ["parent_id", "metrics", "dataset", "split"],
           "prediction": ["prompt_digest", "output_digest", "model_root", "verdict", "timestamp", "parent_id"],
           "deployment": ["model_root", "target", "action", "parent_id", "details"]}
_CLASSES = {"training": TrainingRecord, "dataset": DatasetRecord, "evaluation": EvaluationRecord,
            "prediction": PredictionRecord, "deployment": DeploymentRecord}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(EVENT_TYPES), data=st.data())
def test_fuzz_records_raise_only_ledger_errors(tmp_path_factory, kind, data):
    t = _fuzz_ledger(tmp_path_factory)
    kw = data.draw(st.fixed_dictionaries({}, optional={f: _junk for f in _FIELDS[kind]}))
    how = data.draw(st.sampled_from(["record", "event"]))
    try:
        if how == "record":
            h = getattr(t, f"record_{kind}")(_CLASSES[kind](**kw))
        else:
            parents = kw.pop("parent_id", None)
            h = t.record_event(data.draw(st.sampled_from([kind, "bogus"])), kw, parents)
    except LedgerError:
        return
    except TypeError as e:  # only the dataclass constructor's own missing-argument error is allowed here
        assert how == "record" and "missing" in str(e), e
        return
    assert len(h) == 64 and t.get(h).type == kind


_FUZZ = {}


def _fuzz_ledger(factory):
    if "t" not in _FUZZ:
        _FUZZ["t"] = Ledger(factory.mktemp("fuzz"))
        _FUZZ["root"] = _FUZZ["t"].record_training(TrainingRecord(**SEED_TRAINING))
    return _FUZZ["t"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=st.integers(1, 5), col=st.sampled_from(["payload", "parents", "type", "hash", "prev", "recorded_at"]),
       value=st.one_of(st.text(max_size=30), st.integers().map(str), st.just("[]"), st.just("{}"),
                       st.just('{"step":1}'), st.just("null")))
def test_fuzz_corrupted_store_is_reported_not_crashed(tmp_path_factory, seq, col, value):
    if "template" not in _FUZZ:
        d = tmp_path_factory.mktemp("template")
        _FUZZ["hashes"] = _chain(d, 5)
        _FUZZ["template"] = d
    d = tmp_path_factory.mktemp("corrupt")
    shutil.copy(_FUZZ["template"] / "ledger.sqlite", d / "ledger.sqlite")
    old = sqlite3.connect(d / "ledger.sqlite").execute(f"SELECT {col} FROM events WHERE seq=?", (seq,)).fetchone()[0]
    if value == old:
        return
    try:
        _sql(d, (f"UPDATE events SET {col}=? WHERE seq=?", (value, seq)))
    except sqlite3.IntegrityError:  # e.g. a duplicate hash: the store itself refused
        return
    t = Ledger(d, verify=False)
    r = t.verify()
    if r.ok:  # only an edit that does not change the canonical meaning may pass
        assert col == "payload" and canonical_json(json.loads(value)) == canonical_json(json.loads(old))
    else:
        assert r.first_bad_seq == seq
    for h in _FUZZ["hashes"]:
        try:
            t.verify(h)
            t.trace(h)
        except LedgerError:
            pass
    try:
        Ledger(d).close()
        assert r.ok
    except LedgerError as e:
        assert not r.ok and f"#{seq}" in str(e)


# ---------------------------------------------------------------- encryption at rest
def _key_file(path, key):
    path.write_text(key.hex())
    path.chmod(0o600)
    return path


def _seed_events(t):
    tr = t.record_training(TrainingRecord(**SEED_TRAINING))
    ds = t.record_dataset(DatasetRecord(name="wiki-en", version="2024-03", parent_id=tr))
    ev = t.record_evaluation(EvaluationRecord(parent_id=[tr, ds], metrics={"loss": 0.42, "accuracy": 0.91}))
    return [tr, ds, ev]


def test_encrypted_round_trip(tmp_path):
    key = os.urandom(32)
    t = Ledger(tmp_path / "enc", key=key)
    hs = _seed_events(t)
    plain = Ledger(tmp_path / "plain")
    assert _seed_events(plain) == hs  # ids commit to the plaintext: identical in both ledgers
    assert hs[0] == "d4f037dc052c28a7ab2147ae730f736554cf71cb4f14de367b25f2ed562b5a51"
    assert t.encrypted and not plain.encrypted and "encrypted" in repr(t)
    with pytest.raises(LedgerError):  # a failed batch leaves nothing behind, encrypted too
        with t.batch():
            t.record_training(TrainingRecord("r2", "m", "v1"))
            t.record_dataset(DatasetRecord("d2", "1", parent_id="f" * 64))
    assert len(t) == 3
    t.close()
    raw = b"".join(f.read_bytes() for f in (tmp_path / "enc").glob("ledger.sqlite*"))
    assert b"llama-3-8b" not in raw and b"wiki-en" not in raw and b"accuracy" not in raw
    assert b"wiki-en" in b"".join(f.read_bytes() for f in (tmp_path / "plain").glob("ledger.sqlite*"))
    db = sqlite3.connect(tmp_path / "enc" / "ledger.sqlite")
    stored = [r[0] for r in db.execute("SELECT payload FROM events ORDER BY seq")]
    db.close()
    assert all(isinstance(b, bytes) and b.startswith(b"MLPGCM") for b in stored)
    again = Ledger(tmp_path / "enc", key=_key_file(tmp_path / "k", key))  # a key file path works too; reopen verifies
    assert [e.payload for e in again.events()] == [e.payload for e in plain.events()]
    assert [e.hash for e in again.trace(hs[2])] == [e.hash for e in plain.trace(hs[2])]
    assert again.verify(hs[2]).checked == 3 and again.verify().head == again.head()


def test_encrypted_wrong_or_missing_key(tmp_path):
    key = os.urandom(32)
    _seed_events(Ledger(tmp_path / "enc", key=key))
    Ledger(tmp_path / "plain").close()
    wrong = os.urandom(32)
    msgs = []
    for kw, exc, text in [({}, DecryptionError, "is encrypted"), ({"key": wrong}, DecryptionError, "wrong key")]:
        with pytest.raises(exc, match=text) as e:
            Ledger(tmp_path / "enc", **kw)
        msgs.append(str(e.value))
    with pytest.raises(LedgerError, match="not encrypted") as e:
        Ledger(tmp_path / "plain", key=key)
    msgs.append(str(e.value))
    for bad in [os.urandom(16), "x" * 32, 42]:
        with pytest.raises((KeyFileError, LedgerError)):
            Ledger(tmp_path / "enc", key=bad)
    assert not any(k.hex() in m or k.hex().upper() in m for m in msgs for k in (key, wrong))
    assert is_encrypted_ledger(tmp_path / "enc") and not is_encrypted_ledger(tmp_path / "plain")


def _flip(path, seq, i):
    db = sqlite3.connect(path / "ledger.sqlite")
    db.execute("DROP TRIGGER IF EXISTS events_no_update")
    blob = bytearray(db.execute("SELECT payload FROM events WHERE seq=?", (seq,)).fetchone()[0])
    blob[i] ^= 0x01
    db.execute("UPDATE events SET payload=? WHERE seq=?", (bytes(blob), seq))
    db.commit()
    db.close()
    return len(blob)


def test_altered_ciphertext_byte_names_the_event(tmp_path):
    key = os.urandom(32)
    hs = _chain_enc(tmp_path, key)
    t = Ledger(tmp_path, key=key, verify=False)
    n = _flip(tmp_path, 3, 0)
    _flip(tmp_path, 3, 0)  # restore
    for i in range(n):  # every byte of event #3's stored payload: magic, nonce, ciphertext, tag
        _flip(tmp_path, 3, i)
        with pytest.raises(DecryptionError, match=f"event #3 {hs[2]}") as e:
            t.get(hs[2])
        assert (e.value.seq, e.value.event) == (3, hs[2])
        if i in (0, n // 2, n - 1):
            with pytest.raises(DecryptionError, match="event #3"):
                t.verify()
            with pytest.raises(DecryptionError, match="event #3"):
                t.trace(hs[-1])
            with pytest.raises(DecryptionError, match="event #3"):
                Ledger(tmp_path, key=key)  # reopening verifies
        _flip(tmp_path, 3, i)
    assert t.verify() and t.get(hs[2]).payload["metrics"] == {"step": 2, "loss": 0.5}
    # a ciphertext moved to another row does not decrypt there (its AAD is its event hash)
    _sql(tmp_path, "UPDATE events SET payload=(SELECT payload FROM events WHERE seq=2) WHERE seq=4")
    with pytest.raises(DecryptionError, match=f"event #4 {hs[3]}"):
        t.verify()
    # a payload replaced by plaintext JSON is refused, not read
    _sql(tmp_path, ("UPDATE events SET payload=? WHERE seq=4", ('{"metrics":{"step":3}}',)))
    with pytest.raises(DecryptionError, match="event #4.*not ciphertext"):
        t.get(hs[3])
    assert cli_run(["ledger", "verify", "--path", str(tmp_path), "--key-file", str(_key_file(tmp_path / "k", key))]) == 1


def _chain_enc(path, key, n=5):
    t = Ledger(path, key=key)
    hs = [t.record_training(TrainingRecord("r", "m", "v1", {"lr": 0.1}))]
    for i in range(1, n):
        hs.append(t.record_evaluation(EvaluationRecord(hs[-1], {"step": i, "loss": 1 / i})))
    t.close()
    return hs


def test_encrypted_cli(tmp_path, capsys, monkeypatch):
    key = os.urandom(32)
    enc, plain = tmp_path / "enc", tmp_path / "plain"
    hs = _chain_enc(enc, key, 3)
    _chain(plain, 2)
    kf = _key_file(tmp_path / "ledger.key", key)
    monkeypatch.delenv("ML_PROVENANCE_KEY", raising=False)
    assert cli_run(["ledger", "verify", "--path", str(enc), "--key-file", str(kf)]) == 0
    assert cli_run(["ledger", "trace", hs[2][:12], "--path", str(enc), "--key-file", str(kf)]) == 0
    assert cli_run(["ledger", "verify", "--path", str(enc)]) == 2  # no key
    assert cli_run(["ledger", "verify", "--path", str(enc),
                    "--key-file", str(_key_file(tmp_path / "wrong.key", os.urandom(32)))]) == 2
    assert cli_run(["ledger", "verify", "--path", str(plain), "--key-file", str(kf)]) == 2  # explicit key: refused
    monkeypatch.setenv("ML_PROVENANCE_KEY", key.hex())
    assert cli_run(["ledger", "show", "--path", str(enc)]) == 0
    assert cli_run(["ledger", "verify", "--path", str(plain)]) == 0  # env key, plaintext ledger: ignored with a note
    out = capsys.readouterr()
    assert "not encrypted; the key is not used" in out.err and hs[0][:16] in out.out
    assert key.hex() not in out.out + out.err


# ---------------------------------------------------------------- signed ledger head
@pytest.fixture(scope="module")
def head_keys(tmp_path_factory):
    from ml_provenance.provenance.signing import generate_keypair
    d = tmp_path_factory.mktemp("keys")
    return generate_keypair(d, "ops"), generate_keypair(d, "evil")


def test_signed_head_detects_tail_truncation(tmp_path, head_keys, capsys):
    (priv, pub), _ = head_keys
    hs = _chain(tmp_path, 5)
    t = Ledger(tmp_path)
    sig = t.sign_head(priv)
    assert sig == tmp_path / HEAD_SIG_NAME and json.loads(sig.read_text())["seq"] == 5
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic write leaves no temp file
    assert t.verify_head(pub) and t.verify_head(pub).events_after == 0
    assert cli_run(["ledger", "verify", "--path", str(tmp_path), "--public-key", str(pub)]) == 0
    hs.append(t.record_evaluation(EvaluationRecord(hs[-1], {"step": 6})))
    hs.append(t.record_evaluation(EvaluationRecord(hs[-1], {"step": 7})))
    hc = t.verify_head(pub)
    assert hc.ok and hc.events_after == 2 and "2 events after the signed head" in hc.reason
    assert cli_run(["ledger", "verify", "--path", str(tmp_path), "--public-key", str(pub)]) == 0
    assert "2 events after the signed head" in capsys.readouterr().out
    _sql(tmp_path, "DELETE FROM events WHERE seq >= 4")  # cut 4 events off the end: 2 signed, 2 unsigned
    assert t.verify() and len(t) == 3  # the hashes alone cannot see it
    hc = t.verify_head(pub)
    assert not hc and "2 event(s) removed from the end" in hc.reason, hc
    assert cli_run(["ledger", "verify", "--path", str(tmp_path), "--public-key", str(pub)]) == 1
    assert "removed from the end" in capsys.readouterr().out
    # refill to the signed length with different events: same length, different head
    t.record_dataset(DatasetRecord("x", "1"))
    t.record_dataset(DatasetRecord("y", "1"))
    hc = t.verify_head(pub)
    assert not hc and "rewritten" in hc.reason, hc
    assert cli_run(["ledger", "verify", "--path", str(tmp_path)]) == 0  # unsigned verify passes, but says so loudly
    assert "cannot be detected" in capsys.readouterr().err


def test_forged_head_signature_is_rejected(tmp_path, head_keys):
    (priv, pub), (evil_priv, _) = head_keys
    from ml_provenance.provenance.signing import sign_ledger_head
    _chain(tmp_path, 4)
    t = Ledger(tmp_path)
    f = t.sign_head(priv)
    good = json.loads(f.read_text())
    _sql(tmp_path, "DELETE FROM events WHERE seq = 4")
    assert t.verify() and not t.verify_head(pub)
    head = t.head()
    forgeries = {
        "re-signed by another key": dict(good, seq=3, head=head, signature=sign_ledger_head(head, evil_priv)),
        "head and seq edited": dict(good, seq=3, head=head, signature=dict(good["signature"], signed=head)),
        "signature bytes edited": dict(good, seq=3, head=head, signature=dict(
            good["signature"], signed=head, signature=("0" if good["signature"]["signature"][0] != "0" else "1")
            + good["signature"]["signature"][1:])),
        "seq hint moved": dict(good, seq=3),
        "not a dict": [1, 2],
        "seq missing": {k: v for k, v in good.items() if k != "seq"},
    }
    for name, doc in forgeries.items():
        f.write_text(json.dumps(doc))
        hc = t.verify_head(pub)
        assert not hc and isinstance(hc, HeadCheck), (name, hc)
        assert cli_run(["ledger", "verify", "--path", str(tmp_path), "--public-key", str(pub)]) == 1, name
    f.write_text(json.dumps(forgeries["re-signed by another key"]))
    assert "but the trusted key is" in t.verify_head(pub).reason
    f.write_text("{not json")
    assert "unreadable" in t.verify_head(pub).reason
    f.unlink()
    assert "no signed head" in t.verify_head(pub).reason
    assert cli_run(["ledger", "verify", "--path", str(tmp_path), "--public-key", str(tmp_path / "missing.pub")]) == 2
    _sql(tmp_path, "UPDATE events SET payload=replace(payload, '\"step\":2', '\"step\":9') WHERE seq=3")
    with pytest.raises(LedgerError, match="damaged ledger"):
        t.sign_head(priv)  # never sign over damage


def test_sign_head_of_encrypted_ledger_and_cli_sign(tmp_path, head_keys):
    import argparse
    from ml_provenance.provenance.ledger import cmd_ledger
    (priv, pub), _ = head_keys
    key = os.urandom(32)
    _chain_enc(tmp_path, key, 3)
    ns = argparse.Namespace(action="sign", hash=None, path=str(tmp_path), public_key=None,
                            key_file=str(_key_file(tmp_path.parent / "sign-enc.key", key)), sign_key=str(priv))
    assert cmd_ledger(ns) == 0
    assert json.loads((tmp_path / HEAD_SIG_NAME).read_text())["seq"] == 3
    assert Ledger(tmp_path, key=key).verify_head(pub).ok
    with pytest.raises(LedgerError, match="--sign-key"):
        cmd_ledger(argparse.Namespace(**{**vars(ns), "sign_key": None}))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.one_of(st.none(), st.binary(max_size=40), st.text(max_size=40), st.integers(), st.lists(st.integers())),
       blob=st.one_of(st.binary(max_size=80), st.binary(max_size=60).map(lambda b: b"MLPGCM\x00\x01" + b),
                      st.text(max_size=40), st.integers(-2**63, 2**63 - 1)))
def test_fuzz_encrypted_keys_and_ciphertexts_raise_only_typed_errors(tmp_path_factory, key, blob):
    if "enc" not in _FUZZ:
        d = tmp_path_factory.mktemp("enc-fuzz")
        _FUZZ["enc_key"] = os.urandom(32)
        _FUZZ["enc_hashes"] = _chain_enc(d, _FUZZ["enc_key"], 3)
        _FUZZ["enc"] = d
        _FUZZ["enc_open"] = Ledger(d, key=_FUZZ["enc_key"], verify=False)
    d, t, hs = _FUZZ["enc"], _FUZZ["enc_open"], _FUZZ["enc_hashes"]
    try:
        Ledger(d, key=key, verify=False).close()
        assert key == _FUZZ["enc_key"]  # only the right key opens it
    except (KeyFileError, DecryptionError, LedgerError):
        pass
    _sql(d, ("UPDATE events SET payload=? WHERE seq=2", (blob,)))  # any stored value in place of a ciphertext
    with pytest.raises(DecryptionError, match=f"event #2 {hs[1]}"):
        t.get(hs[1])
    with pytest.raises(DecryptionError, match="event #2"):
        t.verify()
    assert t.get(hs[0]).seq == 1
