import pytest

from ml_provenance.provenance.encryption import generate_key_file, load_key
from ml_provenance.provenance.errors import DecryptionError
from ml_provenance.provenance.ledger import Ledger
from ml_provenance.provenance.tracker import Tracker, TrainingRecord


def test_tracker_opens_an_encrypted_ledger_with_its_key(tmp_path, monkeypatch):
    kf = tmp_path / "ledger.key"
    generate_key_file(kf)
    led = Ledger(tmp_path / "a", key=load_key(kf))
    h = led.record_training(TrainingRecord("run-1", "tiny", "v1", {"lr": "3e-4"}))
    led.close()
    assert Tracker(tmp_path / "a", key_file=kf).verify(h).ok
    monkeypatch.delenv("ML_PROVENANCE_KEY", raising=False)
    with pytest.raises(DecryptionError):  # no key anywhere: a typed error, not plaintext garbage
        Tracker(tmp_path / "a").events()
