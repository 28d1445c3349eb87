import inspect

from ml_provenance.provenance import errors


def test_every_error_derives_from_the_base():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)]
    assert len(classes) >= 10
    for c in classes:
        assert issubclass(c, errors.ProvenanceError), c


def test_messages_carry_the_facts():
    e = errors.HashMismatchError("sha256:01", "sha256:02", "weights", "wte.weight")
    assert "weights" in str(e) and "wte.weight" in str(e) and "sha256:01" in str(e)
    assert errors.InputTooLongError(600, 512).length == 600
