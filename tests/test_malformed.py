"""Hypothesis-generated malformed provenance documents, safetensors headers and paths: the package raises only
its own typed errors (`ProvenanceError` subclasses) — never a KeyError/TypeError traceback from deep inside —
and never reads outside the model directory."""
import copy
import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from ml_provenance.provenance.capture import (capture_provenance, hash_safetensors, list_model_files, safe_path,
                                              scan_model)
from ml_provenance.provenance.errors import ProvenanceError, UnsafePathError
from ml_provenance.provenance.hash_config import HashConfig
from ml_provenance.provenance.tracker import Tracker
from ml_provenance.provenance.verifier import ProvenanceVerifier

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("malformed")
    d = root / "model"; d.mkdir()
    save_file({"wte.weight": np.arange(24, dtype=np.float32).reshape(4, 6), "ln.bias": np.zeros(6, np.float16)},
              str(d / "model.safetensors"), metadata={"format": "np"})
    (d / "config.json").write_text('{"architectures": ["Toy"]}')
    doc = capture_provenance(d, training_provenance={"metrics": {"loss": 1.0}},
                             safety_metrics={"content_warnings": 0, "passed_checks": 1, "failed_checks": 0, "total_checks": 1})
    (root / "secret.txt").write_text("outside")
    return root, d, doc


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                           max_leaves=10)
paths = st.lists(st.sampled_from(["version", "merkle", "merkle.root", "merkle.algorithm", "merkle.components",
                                  "merkle.components.weights", "merkle.components.metrics", "merkle.tensors",
                                  "merkle.tensors.wte.weight", "merkle.files", "merkle.training_hash",
                                  "merkle.weights_root", "safety_metrics", "signature", "training_provenance"]),
                 min_size=1, max_size=3)


def _mutate(doc, path, value, delete):
    keys = path.split(".", 2) if not path.startswith("merkle.tensors.") else ["merkle", "tensors", path[15:]]
    cur = doc
    for k in keys[:-1]:
        if not isinstance(cur, dict) or k not in cur: return
        cur = cur[k]
    if not isinstance(cur, dict): return
    if delete: cur.pop(keys[-1], None)
    else: cur[keys[-1]] = copy.deepcopy(value)


def _all_entry_points(d, p):
    "Call every public way of reading a provenance document; each must succeed or raise ProvenanceError."
    v = ProvenanceVerifier(cache=False)
    t = Tracker(p.parent)
    for call in (lambda: v.validate_model(d, p), lambda: v.validate_new_model(d, p),
                 lambda: v.validate_component(d, "safety", p), lambda: v.validate_component(d, "weights", p),
                 lambda: v.validate_update(d, p), lambda: t.load_provenance(p),
                 lambda: t.verify_model_hash("sha256:" + "00" * 32, str(p)),
                 lambda: t.verify_component_hash("model_weights", "00" * 32, str(p))):
        try: call()
        except ProvenanceError: pass


@SETTINGS
@given(mutations=st.lists(st.tuples(paths, json_values, st.booleans()), min_size=1, max_size=4))
def test_malformed_documents_raise_only_typed_errors(model, tmp_path, mutations):
    _, d, doc = model
    bad = copy.deepcopy(doc)
    for ps, value, delete in mutations:
        for path in ps: _mutate(bad, path, value, delete)
    p = tmp_path / "prov.json"
    p.write_text(json.dumps(bad))
    _all_entry_points(d, p)


@SETTINGS
@given(cut=st.integers(min_value=0, max_value=10_000), junk=st.binary(max_size=64))
def test_truncated_or_garbage_files_raise_only_typed_errors(model, tmp_path, cut, junk):
    _, d, doc = model
    raw = json.dumps(doc).encode()
    p = tmp_path / "prov.json"
    p.write_bytes(raw[:cut % (len(raw) + 1)] + junk)
    _all_entry_points(d, p)


@SETTINGS
@given(header=json_values | st.dictionaries(st.text(max_size=8), json_values, max_size=3),
       length_delta=st.integers(min_value=-4, max_value=4), tail=st.binary(max_size=40))
def test_malformed_safetensors_headers_raise_corrupted_data(tmp_path, header, length_delta, tail):
    raw = json.dumps(header).encode()
    p = tmp_path / "x.safetensors"
    p.write_bytes(max(0, len(raw) + length_delta).to_bytes(8, "little") + raw + tail)
    try: hash_safetensors(p, "x.safetensors", HashConfig())
    except ProvenanceError: pass


@SETTINGS
@given(rel=st.text(max_size=30) | st.sampled_from(["../secret.txt", "/etc/passwd", "a/../../secret.txt",
                                                  "model/../../secret.txt", "./../secret.txt", "~/x"]))
def test_paths_never_leave_the_model_dir(model, rel):
    root, d, _ = model
    real = os.path.realpath(d)
    try: p = safe_path(d, rel)
    except UnsafePathError: return
    assert str(p) == real or str(p).startswith(real + os.sep)


def test_symlink_out_of_the_model_dir_is_refused(model, tmp_path):
    root, _, _ = model
    d = tmp_path / "m"; d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "tokenizer.json").symlink_to(root / "secret.txt")
    for f in (list_model_files, scan_model, lambda x: Tracker().get_model_hash(x)):
        with pytest.raises(UnsafePathError): f(d)
    (d / "tokenizer.json").unlink()
    (d / "sub").symlink_to(root, target_is_directory=True)
    with pytest.raises(UnsafePathError): list_model_files(d)


def test_missing_model_and_provenance_are_typed(model, tmp_path):
    _, d, _ = model
    v = ProvenanceVerifier(cache=False)
    with pytest.raises(ProvenanceError): v.validate_model(tmp_path / "nope", tmp_path / "nope.json")
    with pytest.raises(ProvenanceError): v.validate_component(d, "safety", tmp_path / "nope.json")
    with pytest.raises(ProvenanceError): v.validate_update(d, 12345)
    with pytest.raises(ProvenanceError): v.validate_update(d, "sha256:" + "ab" * 32)
    with pytest.raises(ProvenanceError): Tracker(tmp_path).load_provenance()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ProvenanceError): scan_model(tmp_path / "file")


def test_the_unmutated_document_validates(model, tmp_path):
    "The harness above is meaningful: the same entry points accept the document before it is damaged."
    _, d, doc = model
    p = tmp_path / "prov.json"
    p.write_text(json.dumps(doc))
    v = ProvenanceVerifier(cache=False)
    assert v.validate_model(d, p).is_valid and v.validate_component(d, "weights", p).is_valid
    assert Tracker(tmp_path).verify_model_hash(Tracker().get_model_hash(d), str(p))


@pytest.mark.parametrize("name,content", [("metrics.json", b'{"loss": 1.'), ("safety.json", b"[1, 2]"),
                                          ("config.json", b'{"architectures": 5}'), ("system.json", b"\xff\xfe")])
def test_damaged_component_files_in_capture_are_typed(model, tmp_path, name, content):
    _, d, _ = model
    m = tmp_path / "m"
    shutil.copytree(d, m)
    (m / name).write_bytes(content)
    try: doc = capture_provenance(m, safety_metrics={"total_checks": 0})
    except ProvenanceError: return
    assert doc["merkle"]["files"][name]  # accepted (e.g. odd but valid JSON): still covered by the tree
