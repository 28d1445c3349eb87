"""RFC 9162 Merkle tree: known answers, an independent reference (pymerkle 7), every proof of many tree shapes.

pymerkle 7's `InmemoryTree` in its default configuration (`security=True`) hashes leaves as H(0x00||d) and nodes as
H(0x01||l||r) and splits at the largest power of two (RFC 6962 §2.1 = RFC 9162 §2.1.1), and its empty tree is
H(""): `test_pymerkle_is_an_rfc6962_reference` checks that against the CT vectors before we rely on it.
"""
import hashlib
import json
import random
import warnings

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning)
from pymerkle import InmemoryTree

from ml_provenance.provenance.errors import CorruptedDataError, MissingComponentError, UnsupportedHashError
from ml_provenance.provenance.merkle_tree import (ABSENT, ALIASES, COMPONENTS, InclusionProof, MLProvenanceMerkleTree,
                                                  canonical_json, inclusion_path, leaf_hash, merkle_root, node_hash,
                                                  verify_inclusion)

# certificate-transparency reference leaves and the roots of their prefixes (sizes 0..8)
CT_LEAVES = [bytes.fromhex(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                        "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]


def ref_root(entries):
    t = InmemoryTree(algorithm="sha256")
    for e in entries: t.append_entry(e)
    return t.get_state()


def flip(h: str) -> str:
    return ("1" if h[0] == "0" else "0") + h[1:]


def test_known_answers_empty_and_single_leaf():
    # RFC 9162 §2.1.1: MTH({}) = HASH(); MTH({d0}) = HASH(0x00 || d0)
    assert merkle_root([]).hex() == CT_ROOTS[0] == hashlib.sha256(b"").hexdigest()
    assert merkle_root([leaf_hash(b"")]).hex() == CT_ROOTS[1] == hashlib.sha256(b"\x00").hexdigest()
    assert node_hash(b"l", b"r").hex() == hashlib.sha256(b"\x01lr").hexdigest()


def test_ct_vectors_all_prefixes():
    lh = [leaf_hash(d) for d in CT_LEAVES]
    assert [merkle_root(lh[:n]).hex() for n in range(9)] == CT_ROOTS


def test_pymerkle_is_an_rfc6962_reference():
    assert ref_root([]).hex() == CT_ROOTS[0]
    assert [ref_root(CT_LEAVES[:n]).hex() for n in range(1, 9)] == CT_ROOTS[1:]


def test_roots_and_paths_equal_pymerkle_for_sizes_1_to_300():
    rng = random.Random(1)
    entries = [rng.randbytes(rng.randint(0, 40)) for _ in range(300)]
    ref = InmemoryTree(algorithm="sha256")
    lh = []
    for n in range(1, 301):
        ref.append_entry(entries[n - 1]); lh.append(leaf_hash(entries[n - 1]))
        assert merkle_root(lh).hex() == ref.get_state().hex(), n
    for n in (1, 2, 3, 5, 8, 13, 64, 100, 255, 300):  # paths: pymerkle's index is 1-based and starts with the leaf
        for i in range(n):
            want = [bytes.fromhex(x) for x in ref.prove_inclusion(i + 1, n).serialize()["path"][1:]]
            assert inclusion_path(lh[:n], i) == want, (i, n)


def random_tree(n, rng, algorithm="sha256"):
    tensors = {f"layer.{rng.randrange(10**6)}.{i}": rng.randbytes(20) for i in range(n)}
    comps = {c: canonical_json({"c": c, "v": rng.random()}) for c in COMPONENTS[1:] if rng.random() < 0.8}
    return MLProvenanceMerkleTree(comps, tensors, algorithm=algorithm), comps, tensors


def test_every_tensor_proof_of_trees_1_to_300_verifies_and_any_alteration_fails():
    rng = random.Random(7)
    for n in range(1, 301):
        tree, comps, tensors = random_tree(n, rng)
        # independent reference: weights subtree and both halves rebuilt with pymerkle
        names = sorted(tensors)
        wroot = ref_root([tensors[k] for k in names])
        assert tree.weights_root == wroot.hex()
        data = {c: comps.get(c, ABSENT[c]) for c in COMPONENTS[1:]}
        data["weights"] = wroot
        tr, cf = ref_root([data[c] for c in COMPONENTS[:3]]), ref_root([data[c] for c in COMPONENTS[3:]])
        assert tree.root == hashlib.sha256(b"\x01" + tr + cf).hexdigest()
        alter_all = n <= 40 or n % 25 == 0
        sample = names if alter_all else rng.sample(names, 3)
        for name in names:
            p = tree.prove_tensor(name)
            assert p.verify(tensors[name]) and p.verify()
            if name not in sample: continue
            assert not p.verify(tensors[name] + b"x")
            assert not p.verify(root=flip(tree.root))
            assert not InclusionProof(**{**p.to_dict(), "leaf_hash": flip(p.leaf_hash)}).verify()
            for i in range(len(p.tensor_path)):
                tp = p.tensor_path[:i] + (flip(p.tensor_path[i]),) + p.tensor_path[i + 1:]
                assert not InclusionProof(**{**p.to_dict(), "tensor_path": tp}).verify(tensors[name])
            for i in range(len(p.path)):
                pp = p.path[:i] + (flip(p.path[i]),) + p.path[i + 1:]
                assert not InclusionProof(**{**p.to_dict(), "path": pp}).verify(tensors[name])
            if n > 1:  # claiming another position or a truncated path fails
                other = (p.tensor_index + 1) % n
                assert not InclusionProof(**{**p.to_dict(), "tensor_index": other}).verify(tensors[name])
                assert not InclusionProof(**{**p.to_dict(), "tensor_path": p.tensor_path[:-1]}).verify(tensors[name])
        for c in COMPONENTS:
            p = tree.prove(c)
            leaf = wroot if c == "weights" else data[c]
            assert p.verify(leaf)
            assert not p.verify(leaf + b"\x00")
            for i in range(len(p.path)):
                pp = p.path[:i] + (flip(p.path[i]),) + p.path[i + 1:]
                assert not InclusionProof(**{**p.to_dict(), "path": pp}).verify(leaf)


def test_proof_cannot_be_relabelled_to_another_component():
    tree, comps, _ = random_tree(5, random.Random(3))
    p = tree.prove("metrics")
    for c in COMPONENTS:
        if c != "metrics":
            assert not InclusionProof(**{**p.to_dict(), "component": c}).verify()


def test_proof_round_trip_and_junk():
    tree, _, tensors = random_tree(9, random.Random(4))
    p = tree.prove_tensor(sorted(tensors)[4])
    q = InclusionProof.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q == p and q.verify(tensors[p.tensor])
    for junk in [None, [], {}, {**p.to_dict(), "path": ["zz"]}, {**p.to_dict(), "algorithm": "md5"},
                 {k: v for k, v in p.to_dict().items() if k != "root"}]:
        with pytest.raises((CorruptedDataError, UnsupportedHashError)):
            InclusionProof.from_dict(junk)


def test_tree_round_trip_and_tamper_detection():
    tree, comps, tensors = random_tree(12, random.Random(5))
    d = json.loads(json.dumps(tree.to_dict()))
    assert MLProvenanceMerkleTree.from_dict(d) == tree
    t0 = sorted(tensors)[0]
    for bad in [{**d, "root": flip(d["root"])}, {**d, "training_hash": flip(d["training_hash"])},
                {**d, "components": {**d["components"], "system": flip(d["components"]["system"])}},
                {**d, "tensors": {**d["tensors"], t0: flip(d["tensors"][t0])}},
                {**d, "components": {**d["components"], "optimizer": d["root"]}},
                {**d, "components": {**d["components"], "data": "abc"}}, {**d, "tensors": []}, "not a dict"]:
        with pytest.raises(CorruptedDataError):
            MLProvenanceMerkleTree.from_dict(bad)
    with pytest.raises(MissingComponentError):
        MLProvenanceMerkleTree.from_dict({**d, "components": {k: v for k, v in d["components"].items() if k != "safety"}})


def test_aliases_absent_and_errors():
    assert ALIASES["safety_metrics"] == "safety"
    a = MLProvenanceMerkleTree({"training_config": b"cfg"})
    b = MLProvenanceMerkleTree({"config": b"cfg"})
    assert a == b and a.absent == ("weights", "metrics", "data", "safety", "system")
    assert len(set(a.component_hashes.values())) == 6  # absent leaves name their component: all distinct
    with pytest.raises(MissingComponentError):
        MLProvenanceMerkleTree({"optimizer": b"x"})
    with pytest.raises(MissingComponentError):
        a.prove("optimizer")
    with pytest.raises(CorruptedDataError):
        MLProvenanceMerkleTree({"config": "a str is ambiguous"})
    with pytest.raises(CorruptedDataError):
        MLProvenanceMerkleTree({"safety_config": b"a", "safety_metrics": b"b"})
    with pytest.raises(CorruptedDataError):
        canonical_json({"x": float("inf")})


def test_diff_names_components_and_tensors():
    rng = random.Random(6)
    tree, comps, tensors = random_tree(20, rng)
    names = sorted(tensors)
    changed = {**tensors, names[3]: b"new"}
    del changed[names[7]]
    changed["extra.weight"] = b"e"
    other = MLProvenanceMerkleTree({**comps, "system": b"other machine"}, changed)
    assert tree.diff(other) == {"components": ["weights", "system"],
                                "tensors": sorted([names[3], names[7], "extra.weight"])}
    assert tree.diff(tree) == {"components": [], "tensors": []}
    with pytest.raises(UnsupportedHashError):
        tree.diff(MLProvenanceMerkleTree(comps, tensors, algorithm="sha512"))


@pytest.mark.parametrize("algorithm,size", [("sha512", 64), ("sha3_256", 32), ("blake2b", 64), ("blake3", 32)])
def test_other_algorithms(algorithm, size):
    if algorithm == "blake3": pytest.importorskip("blake3")
    tree, comps, tensors = random_tree(7, random.Random(8), algorithm)
    assert tree.algorithm == algorithm and len(bytes.fromhex(tree.root)) == size
    name = sorted(tensors)[2]
    assert tree.prove_tensor(name).verify(tensors[name])
    assert MLProvenanceMerkleTree.from_dict(tree.to_dict()) == tree
    assert tree.root != MLProvenanceMerkleTree(comps, tensors).root


def test_verify_inclusion_rejects_bad_index_and_size():
    lh = [leaf_hash(d) for d in CT_LEAVES]
    root = merkle_root(lh)
    path = inclusion_path(lh, 5)
    assert verify_inclusion(lh[5], 5, 8, path, root)
    assert not verify_inclusion(lh[5], 8, 8, path, root)
    assert not verify_inclusion(lh[5], 5, 9, path, root)
    assert not verify_inclusion(lh[5], -1, 8, path, root)
    assert not verify_inclusion(lh[5], 5, 8, path + [root], root)
