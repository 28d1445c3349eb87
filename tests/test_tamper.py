"""1,000 random single-byte flips across every component file of a tiny real GPT-2 directory: each one is
detected by `validate_model` and attributed to the right component (and, for weights, the right tensor or the
safetensors header)."""
import os
import random

import pytest

from ml_provenance.provenance.capture import (HEADER_SUFFIX, capture_provenance, component_of, list_model_files,
                                              read_safetensors_header, system_info, write_component_files)
from ml_provenance.provenance.errors import CorruptedDataError, HashMismatchError
from ml_provenance.provenance.merkle_tree import COMPONENTS
from ml_provenance.provenance.store import save_provenance
from ml_provenance.provenance.verifier import ProvenanceVerifier

N_FLIPS = 1000


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ml_provenance.demo import build_demo_model
    root = tmp_path_factory.mktemp("tamper")
    d = root / "model"
    build_demo_model(d, seed=1)  # real GPT-2 (2 layers, 32 dims) + tokenizer, save_pretrained as safetensors
    write_component_files(d, metrics={"train_loss": 3.1, "val_loss": 3.3}, data={"train": {"samples": 20}},
                          safety={"config": {"min_age_rating": "TEEN"},
                                  "metrics": {"content_warnings": 0, "passed_checks": 5, "failed_checks": 0,
                                              "total_checks": 5}},
                          system=system_info(), training_config={"epochs": 1, "batch_size": 2, "learning_rate": 1e-3})
    doc = capture_provenance(d)
    prov = save_provenance(doc, root / "provenance")
    return d, prov, doc


def _regions(d):
    "`(relpath, component, start, end, expected tensor)` for every byte range of every file."
    out = []
    for rel, path in list_model_files(d):
        size = path.stat().st_size
        if component_of(rel) != "weights":
            out.append((rel, component_of(rel), 0, size, None))
            continue
        with open(path, "rb") as f:
            raw, _, tensors = read_safetensors_header(f, size, rel)
        out.append((rel, "weights", 0, len(raw), rel + HEADER_SUFFIX))
        out += [(rel, "weights", len(raw) + b, len(raw) + e, t) for t, _, _, b, e in tensors if e > b]
    return out


def test_every_component_is_present(model):
    d, _, doc = model
    assert set(c for _, c, *_ in _regions(d)) == set(COMPONENTS)
    assert not set(doc["merkle"]["components"]) - set(COMPONENTS)


def test_random_single_byte_flips_are_detected_and_attributed(model):
    d, prov, _ = model
    v = ProvenanceVerifier(cache=False)
    assert v.validate_model(d, prov).is_valid
    regions = _regions(d)
    # pick a component uniformly (weights counted twice: header and tensor data), then a region, then a byte
    kinds = {}
    for r in regions:
        kinds.setdefault(("header" if r[4] and r[4].endswith(HEADER_SUFFIX) else r[1]), []).append(r)
    rng = random.Random(20261123)
    seen = {}
    for _ in range(N_FLIPS):
        rel, comp, start, end, tensor = rng.choice(kinds[rng.choice(sorted(kinds))])
        off, x = rng.randrange(start, end), rng.randrange(1, 256)
        path = d / rel
        with open(path, "r+b") as f:
            f.seek(off); old = f.read(1)[0]
            f.seek(off); f.write(bytes([old ^ x]))
        try:
            with pytest.raises((HashMismatchError, CorruptedDataError)) as ei:
                v.validate_model(d, prov)
        finally:
            with open(path, "r+b") as f:
                f.seek(off); f.write(bytes([old]))
        e = ei.value
        where = f"{rel}@{off} ^{x:#04x}"
        if isinstance(e, CorruptedDataError):  # only a damaged safetensors header may be unreadable
            assert comp == "weights" and tensor.endswith(HEADER_SUFFIX) and e.component == rel, where
        else:
            assert e.component == comp, (where, e)
            if comp == "weights": assert e.tensor == tensor, (where, e)
        seen[comp] = seen.get(comp, 0) + 1
    assert set(seen) == set(COMPONENTS) and sum(seen.values()) == N_FLIPS
    assert v.validate_model(d, prov).is_valid  # every flip was undone
