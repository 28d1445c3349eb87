import json
import os
import stat
import subprocess
import sys
import threading

import pytest

from ml_provenance.provenance import store
from ml_provenance.provenance.encryption import generate_key_file, is_encrypted
from ml_provenance.provenance.errors import (CorruptedDataError, DecryptionError, MissingComponentError,
                                             UnsafePathError)
from ml_provenance.provenance.store import (VERSION_RE, atomic_write_bytes, atomic_write_json, list_versions,
                                            load_provenance, new_version, save_provenance, save_provenance_file)

GEN = "from ml_provenance.provenance.store import new_version\nprint('\\n'.join(new_version() for _ in range(3000)))"


def doc(**kw):
    d = {"version": new_version(), "data_provenance": {"train": {"samples": 3}},
         "training_provenance": {"config": {"epochs": 1}, "metrics": {"train_loss": 1.5}},
         "safety_metrics": {"content_warnings": 0, "failed_checks": 0, "passed_checks": 4, "total_checks": 4,
                            "checks": {"length": {"passed": 4, "failed": 0}}},
         "merkle": {"algorithm": "sha256", "root": "00" * 32, "components": {}, "tensors": {}}}
    d.update(kw)
    return d


def test_versions_unique_and_sorted_across_processes():
    procs = [subprocess.Popen([sys.executable, "-c", GEN], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate()[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    allv = outs[0] + outs[1] + [new_version() for _ in range(3000)]
    assert len(set(allv)) == len(allv) == 9000
    assert all(VERSION_RE.fullmatch(v) for v in allv)
    for o in outs: assert o == sorted(o)  # strictly increasing within each process


def test_atomic_write_mode_ignores_umask(tmp_path):
    old = os.umask(0)
    try: p = atomic_write_bytes(tmp_path / "sub" / "f.bin", b"x")
    finally: os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600 and p.read_bytes() == b"x"
    assert stat.S_IMODE(atomic_write_bytes(tmp_path / "g", b"y", mode=0o644).stat().st_mode) == 0o644


@pytest.mark.parametrize("fail", ["replace", "fsync"])
def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch, fail):
    p = atomic_write_json(tmp_path / "f.json", {"old": True})
    def boom(*a, **k): raise OSError("disk on fire")
    monkeypatch.setattr(os, fail, boom)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_json(p, {"new": True})
    monkeypatch.undo()
    assert json.loads(p.read_text()) == {"old": True}
    assert [f.name for f in tmp_path.iterdir()] == ["f.json"]


def test_concurrent_reader_never_sees_a_partial_file(tmp_path):
    p = tmp_path / "f.bin"
    a, b = b"a" * 300_000, b"b" * 300_000
    atomic_write_bytes(p, a)
    stop, seen = threading.Event(), set()
    def reader():
        while not stop.is_set(): seen.add(p.read_bytes())
    t = threading.Thread(target=reader); t.start()
    for i in range(150): atomic_write_bytes(p, b if i % 2 == 0 else a)
    stop.set(); t.join()
    assert seen <= {a, b}


def test_save_and_load_round_trip(tmp_path):
    docs = [doc() for _ in range(3)]
    paths = [save_provenance(d, tmp_path) for d in docs]
    assert list_versions(tmp_path) == paths
    assert [load_provenance(p) for p in paths] == docs
    assert load_provenance(tmp_path / "latest.json") == load_provenance(tmp_path) == docs[-1]
    for f in tmp_path.iterdir(): assert stat.S_IMODE(f.stat().st_mode) == 0o600


@pytest.mark.parametrize("version", ["../x", "a/b", "", ".hidden", "latest", 5])
def test_save_refuses_unsafe_versions(tmp_path, version):
    with pytest.raises(UnsafePathError):
        save_provenance(doc(version=version), tmp_path)


def test_save_needs_version_and_json(tmp_path):
    with pytest.raises(MissingComponentError):
        save_provenance({"data_provenance": {}}, tmp_path)
    with pytest.raises(CorruptedDataError, match="NaN"):
        save_provenance(doc(training_provenance={"metrics": {"loss": float("nan")}}), tmp_path)
    with pytest.raises(CorruptedDataError):
        save_provenance([1, 2], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_every_truncation_is_a_corrupted_data_error(tmp_path):
    full = save_provenance(doc(), tmp_path).read_bytes()
    bad = tmp_path / "bad.json"
    for n in range(0, len(full) - 2, 7):
        bad.write_bytes(full[:n])
        with pytest.raises(CorruptedDataError) as e:
            load_provenance(bad)
        assert "bad.json" in str(e.value)


@pytest.mark.parametrize("content,match", [
    (b"\xff\xfe{}", "UTF-8"), (b'{"version": NaN}', "NaN"), (b"[]", "top level is a list"), (b"{}", "no 'version'"),
    (json.dumps(doc(version=3)).encode(), "'version' is an integer"),
    (json.dumps(doc(merkle={"root": 1})).encode(), "'merkle.root' is an integer"),
    (json.dumps(doc(merkle=[])).encode(), "'merkle' is a list"),
    (json.dumps(doc(safety_metrics={"total_checks": True})).encode(), "safety_metrics.total_checks"),
    (json.dumps(doc(safety_metrics={"failed_checks": -1})).encode(), "safety_metrics.failed_checks"),
    (json.dumps(doc(safety_metrics={"checks": {"length": 3}})).encode(), "safety_metrics.checks"),
    (json.dumps(doc(training_provenance={"metrics": [1]})).encode(), "training_provenance.metrics"),
    (json.dumps(doc(data_provenance="big")).encode(), "'data_provenance' is a string"),
])
def test_load_names_what_is_wrong(tmp_path, content, match):
    p = tmp_path / "p.json"
    p.write_bytes(content)
    with pytest.raises(CorruptedDataError, match=match):
        load_provenance(p)


def test_missing_file(tmp_path):
    with pytest.raises(MissingComponentError):
        load_provenance(tmp_path / "nope.json")
    with pytest.raises(MissingComponentError):
        load_provenance(tmp_path)  # a directory without latest.json


def test_encrypted_round_trip_and_failures(tmp_path, monkeypatch):
    monkeypatch.delenv("ML_PROVENANCE_KEY", raising=False)
    key = os.urandom(32)
    d = doc()
    p = save_provenance(d, tmp_path, key=key)
    raw = p.read_bytes()
    assert is_encrypted(raw) and b"train_loss" not in raw and is_encrypted((tmp_path / "latest.json").read_bytes())
    assert load_provenance(p, key=key) == d
    with pytest.raises(DecryptionError, match="is encrypted"):
        load_provenance(p)
    with pytest.raises(DecryptionError):
        load_provenance(p, key=os.urandom(32))
    flipped = bytearray(raw); flipped[len(raw) // 2] ^= 1
    p.write_bytes(bytes(flipped))
    with pytest.raises(DecryptionError):
        load_provenance(p, key=key)
    monkeypatch.setenv("ML_PROVENANCE_KEY", key.hex())
    assert load_provenance(tmp_path / "latest.json") == d  # the environment key, as the CLI documents


def test_save_file_in_place_keeps_encryption(tmp_path, monkeypatch):
    monkeypatch.delenv("ML_PROVENANCE_KEY", raising=False)
    kf = generate_key_file(tmp_path / "k.key")
    d = doc()
    p = save_provenance_file(d, tmp_path / "prov.json", key_file=kf)
    assert is_encrypted(p.read_bytes())
    signed = {**load_provenance(p, key_file=kf), "signature": {"algorithm": "ed25519"}}
    with pytest.raises(DecryptionError, match="plaintext"):
        save_provenance_file(signed, p)
    save_provenance_file(signed, p, key_file=kf)
    assert load_provenance(p, key_file=kf) == signed
    plain = save_provenance_file(d, tmp_path / "plain.json")
    assert load_provenance(plain) == d and stat.S_IMODE(plain.stat().st_mode) == 0o600
