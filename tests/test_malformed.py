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


# ---------------------------------------------------------------- merkle.files and sections (review 1, #5)
BAD_KEYS = ["../secret.txt", "/etc/passwd", "a/../../secret.txt", "./config.json", "config.json/", "sub//x", "~/x",
            "a\\b", ""]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_files_keys_outside_the_model_dir_are_refused_before_reading(model, tmp_path, key, capsys):
    from ml_provenance.cli import run
    _, d, doc = model
    bad = copy.deepcopy(doc)
    bad["merkle"]["files"][key] = copy.deepcopy(doc["merkle"]["files"]["config.json"])
    p = tmp_path / "prov.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(UnsafePathError): ProvenanceVerifier(cache=False).validate_model(d, p)
    assert run(["verify", "--model-path", str(d), "--provenance-path", str(p)]) == 2
    assert "escapes" in capsys.readouterr().err


@pytest.mark.parametrize("edit,match", [
    (lambda f: f.update({"extra.json": dict(f["config.json"])}), "not in the model directory"),
    (lambda f: f["config.json"].update(component="weights"), "belongs to 'config'"),
    (lambda f: f["config.json"].update(digest="sha256:" + "00" * 32), "config.json"),
    (lambda f: f.pop("metrics.json"), "metrics.json"),
])
def test_files_records_must_agree_with_the_directory(model, tmp_path, edit, match, capsys):
    from ml_provenance.cli import run
    from ml_provenance.provenance.errors import CorruptedDataError
    _, d, doc = model
    bad = copy.deepcopy(doc)
    edit(bad["merkle"]["files"])
    p = tmp_path / "prov.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(CorruptedDataError, match=match): ProvenanceVerifier(cache=False).validate_model(d, p)
    assert run(["verify", "--model-path", str(d), "--provenance-path", str(p)]) == 2
    assert "merkle.files" in capsys.readouterr().err


SECTIONS = ["data_provenance", "model_provenance", "training_provenance", "system", "safety_config", "safety_metrics"]
hexes = st.text("0123456789abcdef", min_size=64, max_size=64)
file_keys = st.sampled_from(BAD_KEYS + ["config.json", "metrics.json", "model.safetensors", "safety.json",
                                        "extra.json", "tokenizer.json"]) | st.text(max_size=12)
file_ops = st.one_of(
    st.tuples(st.just("files.set"), file_keys, json_values | st.fixed_dictionaries(
        {"component": st.sampled_from(["config", "weights", "metrics", "data", "safety", "system"]),
         "digest": hexes.map(lambda h: "sha256:" + h)})),
    st.tuples(st.just("files.del"), file_keys, st.none()),
    st.tuples(st.just("files.all"), st.none(), json_values),
    st.tuples(st.just("root"), st.none(), hexes | json_values),
    st.tuples(st.just("component"), st.sampled_from(["weights", "config", "data", "metrics", "safety", "system", "bogus"]),
              hexes | json_values),
    st.tuples(st.just("section"), st.sampled_from(SECTIONS), json_values),
    st.tuples(st.just("section.del"), st.sampled_from(SECTIONS), st.none()),
    st.tuples(st.just("section.key"), st.sampled_from(SECTIONS), st.tuples(st.text(max_size=8), json_values)))


def _apply(doc, op):
    kind, key, value = op
    m = doc["merkle"]
    if kind == "files.set": m["files"][key] = copy.deepcopy(value)
    elif kind == "files.del": m["files"].pop(key, None)
    elif kind == "files.all": m["files"] = copy.deepcopy(value)
    elif kind == "root": m["root"] = value
    elif kind == "component": m["components"][key] = value
    elif kind == "section": doc[key] = copy.deepcopy(value)
    elif kind == "section.del": doc.pop(key, None)
    elif kind == "section.key" and isinstance(doc.get(key), dict): doc[key][value[0]] = copy.deepcopy(value[1])


@SETTINGS
@given(ops=st.lists(file_ops, min_size=1, max_size=3))
def test_a_mutated_document_is_valid_only_if_the_mutation_is_neutral(model, tmp_path, ops):
    "Mutations of merkle.files, the root, the component hashes and the sections: accepted only when nothing changed."
    _, d, doc = model
    bad = copy.deepcopy(doc)
    for op in ops:
        if isinstance(bad["merkle"].get("files"), dict) or not op[0].startswith("files."): _apply(bad, op)
    p = tmp_path / "prov.json"
    p.write_text(json.dumps(bad))
    try: ok = ProvenanceVerifier(cache=False, rate_limiter=False).validate_model(d, p).is_valid
    except ProvenanceError: ok = False
    if ok: assert json.loads(json.dumps(bad)) == json.loads(json.dumps(doc)), ops
