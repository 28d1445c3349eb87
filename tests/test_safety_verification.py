# tests/test_safety_verification.py  (verbatim from the specification's "Automated Safety Testing" snippet)
# ruff: noqa: E712  (the specification compares with == True / == False; kept verbatim)
import pytest
from ml_provenance.safety.verifier import SafetyVerifier


@pytest.fixture
def safety_verifier():
    return SafetyVerifier()


def test_safety_metrics_verification(safety_verifier):
    # Test case 1: Valid safety metrics
    valid_metrics = {
        "content_warnings": 50,
        "passed_checks": 950,
        "total_checks": 1000
    }
    assert safety_verifier.verify_metrics(valid_metrics) == True
    # Test case 2: Invalid safety metrics
    invalid_metrics = {
        "content_warnings": 150,
        "passed_checks": 800,
        "total_checks": 1000
    }
    assert safety_verifier.verify_metrics(invalid_metrics) == False


def test_runtime_safety_monitoring(safety_verifier):
    # Test case: Runtime safety monitoring
    input_text = "Test input"
    safety_result = safety_verifier.check_input(input_text)
    assert "content_warnings" in safety_result
    assert "passed_checks" in safety_result
    assert safety_result["passed_checks"] >= 0
