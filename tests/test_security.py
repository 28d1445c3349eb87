"""Security tests: forgery against signatures, key-file permissions, AES-GCM tampering, crash safety of encrypted
writes, the hash-chained audit log, attestation exports, and fuzzing that only typed errors escape."""
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

from ml_provenance.provenance import attest, audit, encryption, signing
from ml_provenance.provenance.errors import (DecryptionError, KeyFileError, ProvenanceError, RateLimitError,
                                             SignatureError)
from ml_provenance.provenance.capture import capture_provenance

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- a small real model directory and its provenance
def _provenance(model_dir):
    "Provenance of `model_dir` as the recorder computes it (and as an attacker with the same code can recompute it)."
    return capture_provenance(model_dir, training_provenance={"config": {"epochs": 1}, "metrics": {"train_loss": 1.5}},
                              data_provenance={"train": {"samples": 3, "statistics": {"mean": 4.0}}},
                              safety_metrics={"passed_checks": 9, "total_checks": 10, "content_warnings": 0,
                                              "failed_checks": 1})


def _put(path, data, mode=0o600):
    "Plain (not fsynced) write for fuzz loops: durability is not under test there, and fsync costs ms each."
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


@pytest.fixture()
def model_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    rng = np.random.default_rng(0)
    save_file({"wte.weight": rng.standard_normal((8, 4)).astype(np.float32),
               "ln_f.bias": np.zeros(16, np.float32)}, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_embd": 4, "n_head": 1,
                                               "vocab_size": 8}))
    return d


@pytest.fixture()
def keys(tmp_path):
    return signing.generate_keypair(tmp_path / "keys")


# ---------------------------------------------------------------- forgery
def test_forgery_by_recomputing_every_hash_is_rejected_when_the_key_is_pinned(model_dir, keys):
    priv, pub = keys
    doc = _provenance(model_dir)
    doc["signature"] = signing.sign_root(doc["merkle"]["root"], priv)
    assert signing.verify_root_signature(doc["merkle"]["root"], doc["signature"], pub).pinned

    # the attacker rewrites one weight and recomputes every hash, root included
    t = load_file(str(model_dir / "model.safetensors"))
    t["wte.weight"][0, 0] += 1.0
    save_file(t, str(model_dir / "model.safetensors"))
    forged = _provenance(model_dir)
    assert forged["merkle"]["root"] != doc["merkle"]["root"]

    # a: keeps the owner's signature -> it covers another root
    with pytest.raises(SignatureError, match="covers"):
        signing.verify_root_signature(forged["merkle"]["root"], doc["signature"], pub)
    # b: also edits `signed` to the new root -> Ed25519 does not verify
    with pytest.raises(SignatureError, match="does not verify"):
        signing.verify_root_signature(forged["merkle"]["root"], {**doc["signature"], "signed": forged["merkle"]["root"]}, pub)
    # c: re-signs with their own key and embeds it -> refused against the pinned key ...
    attacker_sig = signing.sign_root(forged["merkle"]["root"], Ed25519PrivateKey.generate())
    with pytest.raises(SignatureError, match="trusted key"):
        signing.verify_root_signature(forged["merkle"]["root"], attacker_sig, pub)
    # ... and accepted unpinned only with the explicit "not pinned" verdict
    check = signing.verify_root_signature(forged["merkle"]["root"], attacker_sig)
    assert check.pinned is False and "NOT pinned" in check.note
    # d: strips the signature -> required-signature mode refuses
    with pytest.raises(SignatureError, match="missing"):
        signing.verify_root_signature(forged["merkle"]["root"], None, pub)


def test_ledger_head_and_root_signatures_do_not_cross(keys):
    priv, pub = keys
    h = hashlib.sha256(b"head").hexdigest()
    with pytest.raises(SignatureError):
        signing.verify_root_signature(h, signing.sign_ledger_head(h, priv), pub)
    with pytest.raises(SignatureError):
        signing.verify_ledger_head_signature(h, signing.sign_root(h, priv), pub)
    assert signing.verify_ledger_head_signature(h, signing.sign_ledger_head(h, priv), pub).domain == "ledger-head"


# ---------------------------------------------------------------- key files
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_readable_private_key_is_refused_like_ssh(keys, mode):
    priv, _ = keys
    priv.chmod(mode)
    with pytest.raises(KeyFileError, match=f"mode {mode:04o}.*chmod 600"):
        signing.load_private_key(priv)
    with pytest.raises(KeyFileError):
        signing.sign_root("ab" * 32, priv)
    priv.chmod(0o600)
    assert isinstance(signing.load_private_key(priv), Ed25519PrivateKey)


def test_keys_of_another_type_are_refused(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec
    k = ec.generate_private_key(ec.SECP256R1())
    f = signing.write_secret_file(tmp_path / "ec.key", k.private_bytes(
        signing.serialization.Encoding.PEM, signing.serialization.PrivateFormat.PKCS8,
        signing.serialization.NoEncryption()))
    with pytest.raises(KeyFileError, match="not an Ed25519 private key"):
        signing.load_private_key(f)
    g = signing.write_secret_file(tmp_path / "ec.pub", k.public_key().public_bytes(
        signing.serialization.Encoding.PEM, signing.serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    with pytest.raises(KeyFileError, match="not an Ed25519 public key"):
        signing.load_public_key(g)
    with pytest.raises(KeyFileError, match="does not exist"):
        signing.load_private_key(tmp_path / "missing.key")


def test_every_damaged_byte_of_a_key_file_is_a_key_file_error(keys, tmp_path):
    # regression: OpenSSL reports some damaged PEMs as InternalError (found by the fuzz test below)
    for src, load, mode in ((keys[0], signing.load_private_key, 0o600), (keys[1], signing.load_public_key, 0o644)):
        pem = src.read_bytes()
        for i in range(len(pem)):
            for bit in (0x01, 0x40):
                f = _put(tmp_path / "k", pem[:i] + bytes([pem[i] ^ bit]) + pem[i + 1:], mode)
                try:
                    load(f)  # some flips only touch the PEM armour's case or padding and still load
                except KeyFileError:
                    pass


def test_keygen_modes_and_no_silent_overwrite(tmp_path):
    priv, pub = signing.generate_keypair(tmp_path, "k")
    assert (priv.stat().st_mode & 0o777, pub.stat().st_mode & 0o777) == (0o600, 0o644)
    old = priv.read_bytes()
    with pytest.raises(KeyFileError, match="refusing"):
        signing.generate_keypair(tmp_path, "k")
    assert priv.read_bytes() == old
    signing.generate_keypair(tmp_path, "k", force=True)
    assert priv.read_bytes() != old and not list(tmp_path.glob(".*.tmp"))


def test_encryption_key_file_permissions_and_formats(tmp_path):
    kf = encryption.generate_key_file(tmp_path / "k")
    key = encryption.load_key(kf)
    kf.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        encryption.load_key(kf)
    raw = tmp_path / "raw"
    signing.write_secret_file(raw, key)
    assert encryption.load_key(raw) == key
    bad = tmp_path / "bad"
    signing.write_secret_file(bad, b"0" * 63)
    with pytest.raises(KeyFileError, match="found 63 bytes") as e:
        encryption.load_key(bad)
    assert "000" not in str(e.value)  # the key material is never echoed


# ---------------------------------------------------------------- encryption
def test_round_trip_wrong_key_and_every_altered_byte(tmp_path):
    key = os.urandom(32)
    msg = json.dumps({"merkle": {"root": "ab" * 32}}).encode()
    blob = encryption.encrypt_bytes(msg, key)
    assert encryption.decrypt_bytes(blob, key) == msg and encryption.is_encrypted(blob)
    assert encryption.encrypt_bytes(msg, key) != blob  # fresh nonce each time
    with pytest.raises(DecryptionError):
        encryption.decrypt_bytes(blob, os.urandom(32))
    for i in range(len(blob)):
        for bit in (0x01, 0x80):
            bad = bytearray(blob)
            bad[i] ^= bit
            with pytest.raises(DecryptionError):
                encryption.decrypt_bytes(bytes(bad), key)
    for n in range(len(blob)):
        with pytest.raises(DecryptionError):
            encryption.decrypt_bytes(blob[:n], key)
    with pytest.raises(DecryptionError):
        encryption.decrypt_bytes(blob + b"\x00", key)


_WRITER = textwrap.dedent("""
    import json, sys
    from ml_provenance.provenance import encryption
    try: from ml_provenance.provenance.store import atomic_write_bytes
    except ImportError: from ml_provenance.provenance.signing import write_secret_file as atomic_write_bytes
    key, path = encryption.load_key(), sys.argv[1]
    print("ready", flush=True)
    i = 1
    while True:
        doc = {"i": i, "pad": "x" * 400_000, "end": i}
        atomic_write_bytes(path, encryption.encrypt_bytes(json.dumps(doc).encode(), key))
        i += 1
""")


def test_kill_9_during_encrypted_atomic_write_leaves_old_or_new(tmp_path):
    try:
        from ml_provenance.provenance.store import atomic_write_bytes
    except ImportError:  # until the store lands, the same temp+fsync+rename writer from signing
        from ml_provenance.provenance.signing import write_secret_file as atomic_write_bytes
    key = os.urandom(32)
    target = tmp_path / "prov.json.enc"
    atomic_write_bytes(target, encryption.encrypt_bytes(json.dumps({"i": 0, "pad": "", "end": 0}).encode(), key))
    env = {**os.environ, "ML_PROVENANCE_KEY": key.hex()}
    rng, seen = random.Random(0), set()
    for _ in range(20):
        p = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], env=env, stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.15))
        p.kill()
        p.wait()
        p.stdout.close()
        doc = json.loads(encryption.decrypt_bytes(target.read_bytes(), key))
        assert doc["i"] == doc["end"] and len(doc["pad"]) in (0, 400_000)
        seen.add(doc["i"])
    assert len(seen) > 1  # kills landed at different points of the write loop


# ---------------------------------------------------------------- audit log and rate limit
_APPENDER = "import sys; from ml_provenance.provenance.audit import AuditLog\n" \
            "log = AuditLog(sys.argv[1])\nfor i in range(150): log.append(sys.argv[2], f'm{i}', 'ok')\n"


def test_two_processes_append_one_valid_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    ps = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(path), w]) for w in ("a", "b")]
    assert [p.wait() for p in ps] == [0, 0]
    log = audit.AuditLog(path)
    check = log.verify()
    assert check.ok and check.entries == 300
    assert log.to_df()["who"].value_counts().to_dict() == {"a": 150, "b": 150}


def test_audit_log_points_at_the_first_edited_line(tmp_path):
    log = audit.AuditLog(tmp_path / "a.jsonl")
    for i in range(6):
        log.append("ci", f"model-{i}", "failed", "hash mismatch")
    lines = log.path.read_text().splitlines(keepends=True)
    edits = {"edit": lambda ls: ls[:3] + [ls[3].replace("failed", "passed")] + ls[4:],
             "delete": lambda ls: ls[:3] + ls[4:],
             "swap": lambda ls: ls[:2] + [ls[3], ls[2]] + ls[4:],
             "torn tail": lambda ls: ls[:5] + [ls[5][:20]]}
    want = {"edit": 4, "delete": 4, "swap": 3, "torn tail": 6}
    for kind, f in edits.items():
        log.path.write_text("".join(f(lines)))
        assert log.verify().first_bad_line == want[kind], kind
        with pytest.raises(ProvenanceError):
            log.entries()
    log.path.write_text("".join(lines))
    assert log.verify().ok


def test_token_bucket_with_injected_clock():
    now = [100.0]
    tb = audit.TokenBucket(rate_per_s=1, capacity=2, clock=lambda: now[0])
    tb.acquire()
    tb.acquire()
    with pytest.raises(RateLimitError) as e:
        tb.acquire()
    assert e.value.retry_after == pytest.approx(1.0)
    now[0] += 1.0
    tb.acquire()
    with pytest.raises(ProvenanceError):
        audit.TokenBucket(rate_per_s=0)


# ---------------------------------------------------------------- attestations
def test_exports_of_a_captured_provenance(model_dir, keys):
    doc = _provenance(model_dir)
    doc["signature"] = signing.sign_root(doc["merkle"]["root"], keys[0])
    st_ = attest.to_in_toto(doc)
    assert st_["_type"] == "https://in-toto.io/Statement/v1" and st_["predicateType"]
    names = {s["name"]: s["digest"] for s in st_["subject"]}
    for f in ("model.safetensors", "config.json", "metrics.json", "data_provenance.json"):  # checkable with sha256sum
        assert names[f] == {"sha256": hashlib.sha256((model_dir / f).read_bytes()).hexdigest()}, f
    # an older record without the whole-file digest: the tensor-leaf digest is labelled, never passed off as sha256
    old = {**doc, "merkle": {**doc["merkle"], "files": {**doc["merkle"]["files"]}}}
    old["merkle"]["files"]["model.safetensors"] = {k: v for k, v in old["merkle"]["files"]["model.safetensors"].items()
                                                   if k != "digest"}
    subj = {s["name"]: s["digest"] for s in attest.to_in_toto(old)["subject"]}
    assert list(subj["model.safetensors"]) == ["ml_provenance-tensor-leaves-sha256"]
    assert names["gpt2#merkle-root"] == {"sha256": doc["merkle"]["root"]}
    slsa = attest.to_slsa(doc)
    p = slsa["predicate"]
    assert slsa["predicateType"] == "https://slsa.dev/provenance/v1"
    assert p["buildDefinition"]["buildType"] and p["runDetails"]["builder"]["id"]
    assert p["buildDefinition"]["externalParameters"]["training"] == {"epochs": 1}
    for rd in p["buildDefinition"]["resolvedDependencies"] + p["runDetails"]["byproducts"]:
        assert rd["name"] and all(len(v) == 64 for v in rd["digest"].values())
    metrics = next(b for b in p["runDetails"]["byproducts"] if b["name"] == "metrics.json")
    assert metrics["digest"]["sha256"] == hashlib.sha256(b'{"train_loss":1.5}').hexdigest()
    # the in-toto project's own protobuf schemas: strict parse (unknown fields fail) + the spec's validate()
    json_format = pytest.importorskip("google.protobuf.json_format")
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement
    for s in (st_, slsa):
        Statement.copy_from_pb(json_format.Parse(json.dumps(s), statement_pb2.Statement())).validate()
    pv = json_format.Parse(json.dumps(p), provenance_pb2.Provenance())
    for rd in [*pv.build_definition.resolved_dependencies, *pv.run_details.byproducts]:
        ResourceDescriptor.copy_from_pb(rd).validate()
    assert pv.run_details.builder.id == attest.PROJECT_URI
    bom = attest.to_cyclonedx(doc)
    cdx = pytest.importorskip("cyclonedx.validation.json")
    from cyclonedx.schema import SchemaVersion
    assert cdx.JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    assert bom["metadata"]["component"]["hashes"] == [{"alg": "SHA-256", "content": doc["merkle"]["root"]}]
    assert attest.to_cyclonedx(doc) == bom  # deterministic, serial number included


def test_cyclonedx_schema_rejects_a_broken_bom(model_dir):
    cdx = pytest.importorskip("cyclonedx.validation.json")
    from cyclonedx.schema import SchemaVersion
    bom = attest.to_cyclonedx(_provenance(model_dir))
    bom["metadata"]["component"]["hashes"][0]["content"] = "not-hex"
    assert cdx.JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is not None


# ---------------------------------------------------------------- fuzzing: only the package's typed errors escape
_KEY = bytes(range(32))
_BLOB = encryption.encrypt_bytes(b'{"a": 1}', _KEY)
_SK = Ed25519PrivateKey.generate()
_ROOT = "cd" * 32
_SIG = signing.sign_root(_ROOT, _SK)

hexish = st.text(alphabet="0123456789abcdefABCDEF:xyz", max_size=140)
any_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                        max_leaves=6)
sig_dicts = st.one_of(
    any_json,
    st.fixed_dictionaries({}, optional={"algorithm": st.sampled_from(["ed25519", "rsa", ""]) | any_json,
                                        "public_key": hexish | any_json, "key_id": hexish | any_json,
                                        "signature": hexish | any_json, "signed": hexish | any_json}),
    st.builds(lambda k, v: {**_SIG, k: v}, st.sampled_from(sorted(_SIG)), hexish | any_json))
blobs = st.one_of(st.binary(max_size=200),
                  st.builds(lambda i, b: _BLOB[:i] + bytes([b]) + _BLOB[i + 1:], st.integers(0, len(_BLOB) - 1),
                            st.integers(0, 255)),
                  st.builds(lambda n: _BLOB[:n], st.integers(0, len(_BLOB))), st.just(_BLOB + b"!"))
_PEM = signing.serialization
_PRIV_PEM = _SK.private_bytes(_PEM.Encoding.PEM, _PEM.PrivateFormat.PKCS8, _PEM.NoEncryption())
keys_ = st.one_of(st.binary(max_size=80), st.text(max_size=80).map(lambda s: s.encode()),
                  st.binary(min_size=32, max_size=32).map(lambda b: b.hex().encode()),
                  st.builds(lambda i, b: _PRIV_PEM[:i] + bytes([b]) + _PRIV_PEM[i + 1:],
                            st.integers(0, len(_PRIV_PEM) - 1), st.integers(0, 255)))


_KEYDIR = tempfile.mkdtemp()


def _fuzz_one(blob, key_text, sig, root):
    outcomes = []
    kp = _put(os.path.join(_KEYDIR, "fuzz.pem"), key_text)
    for load in (signing.load_private_key, signing.load_public_key):
        try:
            load(kp)
        except KeyFileError:
            pass
    try:
        pt = encryption.decrypt_bytes(blob, _KEY)
        assert blob == _BLOB and pt == b'{"a": 1}'  # only the untouched blob may decrypt
        outcomes.append("decrypted")
    except DecryptionError:
        outcomes.append("refused")
    try:
        k = encryption._parse_key(key_text, "fuzz")
        assert len(k) == 32
    except KeyFileError:
        pass
    try:
        chk = signing.verify_root_signature(root, sig, _SK.public_key())
        assert sig == _SIG and root == _ROOT and chk.pinned  # only the genuine pair verifies
    except SignatureError:
        pass
    return outcomes


@FAST
@given(blobs, keys_, sig_dicts, hexish)
def test_fuzz_only_typed_errors(blob, key_text, sig, root):
    _fuzz_one(blob, key_text, sig, root)


@pytest.mark.slow
@SLOW
@given(blobs, keys_, sig_dicts, hexish)
def test_fuzz_only_typed_errors_10k(blob, key_text, sig, root):
    _fuzz_one(blob, key_text, sig, root)


# ---------------------------------------------------------------- CLI
def test_cli_keygen_writes_a_usable_pair_and_refuses_overwrite(tmp_path, capsys):
    from ml_provenance.cli import run
    assert run(["keygen", "--out-dir", str(tmp_path), "--name", "ci"]) == 0
    out = capsys.readouterr().out
    priv, pub = tmp_path / "ci.key", tmp_path / "ci.pub"
    assert signing.key_id(signing.load_public_key(pub)) in out
    sig = signing.sign_root("ab" * 32, priv)
    assert signing.verify_root_signature("ab" * 32, sig, pub).pinned
    assert run(["keygen", "--out-dir", str(tmp_path), "--name", "ci"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_cli_record_sign_verify_export_encrypted(model_dir, keys, tmp_path, capsys, monkeypatch):
    from ml_provenance.cli import run
    from ml_provenance.provenance.store import load_provenance
    monkeypatch.delenv("ML_PROVENANCE_KEY", raising=False)
    priv, pub = keys
    kf = encryption.generate_key_file(tmp_path / "aes.key")
    prov = tmp_path / "prov.json"
    enc = ["--key-file", str(kf)]
    assert run(["record", "--model-path", str(model_dir), "--provenance-path", str(prov), *enc]) == 0
    assert encryption.is_encrypted(prov.read_bytes())
    assert run(["sign", "--provenance-path", str(prov), "--key", str(priv), *enc]) == 0
    assert encryption.is_encrypted(prov.read_bytes())  # still encrypted after signing
    doc = load_provenance(prov, key_file=kf)
    assert signing.verify_root_signature(doc["merkle"]["root"], doc["signature"], pub).pinned
    verify = ["verify", "--model-path", str(model_dir), "--provenance-path", str(prov), "--require-signature",
              "--public-key", str(pub), *enc]
    assert run(verify) == 0
    out = tmp_path / "bom.json"
    assert run(["export", "--provenance-path", str(prov), "--format", "cyclonedx", "--output", str(out), *enc]) == 0
    assert json.loads(out.read_text())["metadata"]["component"]["hashes"][0]["content"] == doc["merkle"]["root"]
    capsys.readouterr()
    assert run(["export", "--provenance-path", str(prov), "--format", "slsa", *enc]) == 0
    assert json.loads(capsys.readouterr().out)["predicateType"] == "https://slsa.dev/provenance/v1"
    # without the key: one clear line, exit 2
    assert run(["sign", "--provenance-path", str(prov), "--key", str(priv)]) == 2
    assert "encrypted" in capsys.readouterr().err
    # a forged, re-signed document fails the pinned verification through the CLI too
    doc["merkle"]["root"] = "0" * 64
    doc["signature"] = signing.sign_root(doc["merkle"]["root"], Ed25519PrivateKey.generate())
    from ml_provenance.provenance.store import save_provenance_file
    save_provenance_file(doc, prov, key_file=kf)
    capsys.readouterr()
    assert run(verify) == 1  # a failed check (signature by the wrong key), not bad input
    assert "but the trusted key is" in capsys.readouterr().out


# ---------------------------------------------------------------- sections are bound to the root (review 1, #1, #2, #4)
SECTION_EDITS = {
    "system": lambda d: d.update(system={"python": "9.9"}),
    "data_provenance": lambda d: d["data_provenance"]["train"].update(samples=3000),
    "training_provenance.config": lambda d: d["training_provenance"]["config"].update(epochs=50),
    "training_provenance.metrics": lambda d: d["training_provenance"]["metrics"].update(train_loss=0.01),
    "model_provenance.architecture": lambda d: d["model_provenance"]["architecture"].update(total_parameters=7),
    "safety_config": lambda d: d.update(safety_config={"min_age_rating": "ADULT"}),
    "safety_metrics": lambda d: d["safety_metrics"].update(passed_checks=10, failed_checks=0),
}


def _signed_release(model_dir, priv, tmp_path):
    from ml_provenance.provenance.store import save_provenance_file
    doc = _provenance(model_dir)
    doc["signature"] = signing.sign_root(doc["merkle"]["root"], priv)
    prov = tmp_path / "signed.json"
    save_provenance_file(doc, prov)
    return doc, prov


@pytest.mark.parametrize("section", sorted(SECTION_EDITS))
def test_a_rewritten_section_of_a_signed_document_is_invalid(model_dir, keys, tmp_path, capsys, section):
    from ml_provenance.cli import run
    from ml_provenance.provenance.errors import CorruptedDataError
    from ml_provenance.provenance.store import save_provenance_file
    from ml_provenance.provenance.verifier import ProvenanceVerifier
    priv, pub = keys
    doc, prov = _signed_release(model_dir, priv, tmp_path)
    verify = ["verify", "--model-path", str(model_dir), "--provenance-path", str(prov), "--require-signature",
              "--public-key", str(pub)]
    assert run(verify) == 0
    forged = json.loads(json.dumps(doc))
    SECTION_EDITS[section](forged)
    save_provenance_file(forged, prov)  # the signature over the root still verifies
    capsys.readouterr()
    assert run(verify) == 1
    out = capsys.readouterr().out
    assert out.startswith("INVALID:") and f"'{section}'" in out, out
    with pytest.raises(CorruptedDataError, match=section.replace(".", r"\.")):
        ProvenanceVerifier(public_key=pub, require_signature=True, cache=False).validate_model(model_dir, prov)


def test_a_section_is_absent_exactly_when_its_file_is(model_dir, tmp_path):
    from ml_provenance.provenance.errors import CorruptedDataError
    from ml_provenance.provenance.store import save_provenance_file
    from ml_provenance.provenance.verifier import ProvenanceVerifier
    doc = capture_provenance(model_dir)  # nothing but weights and config: every other section absent
    assert doc["system"] == {"absent": True} and doc["safety_metrics"] == {"absent": True}
    v, prov = ProvenanceVerifier(cache=False), tmp_path / "p.json"
    save_provenance_file(doc, prov)
    assert v.validate_model(model_dir, prov).is_valid
    for k, val in [("system", {"python": "3.11"}), ("safety_metrics", {"passed_checks": 1, "total_checks": 1})]:
        save_provenance_file({**doc, k: val}, prov)
        with pytest.raises(CorruptedDataError, match=f"'{k}'"): v.validate_model(model_dir, prov)
    save_provenance_file({k: x for k, x in doc.items() if k != "system"}, prov)  # a section left out altogether
    with pytest.raises(CorruptedDataError, match="'system'"): v.validate_model(model_dir, prov)


def test_require_signature_without_a_trusted_key_refuses_a_self_signed_forgery(model_dir, keys, tmp_path, capsys):
    from ml_provenance.cli import run
    from ml_provenance.provenance.store import save_provenance_file
    from ml_provenance.provenance.verifier import ProvenanceVerifier
    priv, pub = keys
    doc, prov = _signed_release(model_dir, priv, tmp_path)
    t = load_file(str(model_dir / "model.safetensors"))
    t["wte.weight"][0, 0] += 1.0
    save_file(t, str(model_dir / "model.safetensors"))
    forged = _provenance(model_dir)  # the forger recomputes everything and signs with their own key
    forged["signature"] = signing.sign_root(forged["merkle"]["root"], Ed25519PrivateKey.generate())
    save_provenance_file(forged, prov)
    capsys.readouterr()
    assert run(["verify", "--model-path", str(model_dir), "--provenance-path", str(prov), "--require-signature"]) == 1
    assert "signature required but no trusted public key given (--public-key)" in capsys.readouterr().out
    with pytest.raises(SignatureError, match="no trusted public key"):
        ProvenanceVerifier(require_signature=True, cache=False).validate_model(model_dir, prov)
    # pinned, the forgery is refused as signed by the wrong key; the owner's document no longer matches the model
    assert run(["verify", "--model-path", str(model_dir), "--provenance-path", str(prov), "--public-key", str(pub)]) == 1
    assert "but the trusted key is" in capsys.readouterr().out


def test_signature_failures_exit_1_and_malformed_documents_exit_2(model_dir, keys, tmp_path, capsys):
    from ml_provenance.cli import run
    from ml_provenance.provenance.store import save_provenance_file
    priv, pub = keys
    doc, prov = _signed_release(model_dir, priv, tmp_path)
    base = ["verify", "--model-path", str(model_dir), "--provenance-path", str(prov)]
    cases = [({**doc, "signature": {**doc["signature"], "signed": "ab" * 32}}, ["--public-key", str(pub)], "covers"),
             ({k: v for k, v in doc.items() if k != "signature"}, ["--public-key", str(pub)], "missing signature")]
    for bad, extra, msg in cases:
        save_provenance_file(bad, prov)
        capsys.readouterr()
        assert run(base + extra) == 1, msg
        assert msg in capsys.readouterr().out
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    save_provenance_file({**unsigned, "merkle": {**doc["merkle"], "root": "ab" * 32}}, prov)
    assert run(base) == 2  # internally inconsistent merkle section: bad input
    assert "merkle" in capsys.readouterr().err


# ---------------------------------------------------------------- audit log and rate limit by default (issue 3)
def test_cli_verify_appends_every_attempt_to_a_hash_chained_audit_log(model_dir, tmp_path, capsys, monkeypatch):
    from ml_provenance.cli import run
    from ml_provenance.provenance.store import save_provenance
    from ml_provenance.provenance.verifier import default_audit_path
    monkeypatch.delenv("ML_PROVENANCE_AUDIT_LOG", raising=False)
    prov = save_provenance(_provenance(model_dir), tmp_path / "artifacts" / "provenance")
    log = audit.AuditLog(default_audit_path(prov))
    assert log.path == tmp_path / "artifacts" / "audit" / "validation.jsonl"
    assert run(["verify", "--model-path", str(model_dir), "--provenance-path", str(prov)]) == 0
    (model_dir / "config.json").write_text('{"model_type": "gpt2", "n_layer": 2}')
    assert run(["verify", "--model-path", str(model_dir), "--provenance-path", str(prov)]) == 1
    assert "config.json" in capsys.readouterr().out  # the changed file is named
    assert run(["verify-safety", "--model-path", str(model_dir), "--provenance-path", str(prov)]) == 1
    entries = log.entries()  # raises unless the chain verifies
    assert log.verify().ok and len(entries) == 4
    assert [(e["what"].split()[0], e["result"]) for e in entries] == [
        ("verify", "ok"), ("verify", "failed"), ("validate_model", "failed"), ("verify-safety", "failed")]
    assert entries[0]["reason"].startswith("sha256:") and "config.json" in entries[1]["reason"]
    assert all(e["who"] and e["ts"] and str(prov) in e["what"] for e in entries)
    other = tmp_path / "elsewhere.jsonl"
    monkeypatch.setenv("ML_PROVENANCE_AUDIT_LOG", str(other))
    assert run(["verify", "--model-path", str(model_dir), "--provenance-path", str(prov)]) == 1
    assert [e["result"] for e in audit.AuditLog(other).entries()] == ["failed"] and len(log.entries()) == 4


def test_verifier_rate_limit_is_on_by_default_and_typed(model_dir, tmp_path):
    from ml_provenance.provenance.store import save_provenance
    from ml_provenance.provenance.verifier import DEFAULT_RATE, ProvenanceVerifier
    prov = save_provenance(_provenance(model_dir), tmp_path / "provenance")
    v = ProvenanceVerifier(cache=False)
    assert (v.rate_limiter.rate, v.rate_limiter.capacity) == (DEFAULT_RATE["rate_per_s"], DEFAULT_RATE["capacity"])
    assert ProvenanceVerifier(rate_limiter=False).rate_limiter is None
    now = [0.0]
    log = audit.AuditLog(tmp_path / "a.jsonl")
    v = ProvenanceVerifier(cache=False, audit_log=log,
                           rate_limiter=audit.TokenBucket(rate_per_s=1, capacity=2, clock=lambda: now[0]))
    assert v.validate_model(model_dir, prov).is_valid and v.validate_new_model(model_dir, prov).is_valid
    with pytest.raises(RateLimitError) as ei: v.validate_component(model_dir, "weights", prov)
    assert ei.value.retry_after == pytest.approx(1.0)
    now[0] += 1.0
    assert v.validate_component(model_dir, "weights", prov).is_valid
    assert [e["result"] for e in log.entries()] == ["ok", "ok", "rate-limited", "ok"]
