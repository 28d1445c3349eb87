import hashlib
import sys
import warnings

import pytest

from ml_provenance.provenance.errors import CorruptedDataError, UnsupportedHashError
from ml_provenance.provenance.hash_config import Digest, HashConfig, hash_bytes, hash_file, resolve_algorithm


@pytest.mark.parametrize("name", ["md5", "MD5", "sha1", "SHA-1", "crc32", "", "sha224"])
def test_refused_and_unknown(name):
    with pytest.raises(UnsupportedHashError):
        HashConfig(name)


def test_blake3_fallback_warns_and_names_real_algorithm(monkeypatch):
    monkeypatch.setitem(sys.modules, "blake3", None)
    with pytest.warns(RuntimeWarning, match="falling back to 'sha256'"):
        cfg = HashConfig("blake3")
    assert cfg.algorithm == "sha256" and cfg.requested == "blake3"
    with pytest.warns(RuntimeWarning):
        assert hash_bytes(b"x", "blake3").algorithm == "sha256"


def test_blake3_used_when_installed():
    blake3 = pytest.importorskip("blake3")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_algorithm("blake3") == "blake3"
    assert hash_bytes(b"abc", "blake3").hex == blake3.blake3(b"abc").hexdigest()


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 2 * (1 << 20) + 7])
def test_hash_file_matches_hashlib_at_chunk_edges(tmp_path, size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    assert str(hash_file(p)) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert hash_file(p, "sha3-256").hex == hashlib.sha3_256(data).hexdigest()


@pytest.mark.parametrize("junk", ["", "sha256", "sha256:", "sha256:zz" + "0" * 62, "sha256:" + "0" * 63,
                                  "sha512:" + "0" * 64, "a:b:c", None, 42])
def test_digest_parse_rejects_junk(junk):
    with pytest.raises((CorruptedDataError, UnsupportedHashError)):
        Digest.parse(junk)


def test_digest_round_trip():
    d = hash_bytes(b"hello", "blake2b")
    assert Digest.parse(str(d)) == d and len(d.bytes) == 64
