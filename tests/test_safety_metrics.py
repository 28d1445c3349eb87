# tests/test_safety_metrics.py  (verbatim from the specification's "Safety Metrics Validation" snippet)
import pytest
from ml_provenance.safety.metrics import SafetyMetrics


@pytest.fixture
def safety_metrics():
    return SafetyMetrics()


def test_content_warning_threshold(safety_metrics):
    # Test case: Content warning threshold
    for _ in range(95):
        safety_metrics.add_warning("test_warning")
    assert safety_metrics.get_warning_count() == 95
    assert not safety_metrics.is_threshold_exceeded()
    # Add more warnings to exceed threshold
    for _ in range(10):
        safety_metrics.add_warning("test_warning")
    assert safety_metrics.is_threshold_exceeded()


def test_safety_check_failure(safety_metrics):
    # Test case: Safety check failure
    safety_metrics.record_check("age_rating", False)
    safety_metrics.record_check("content_filter", True)
    assert safety_metrics.get_failure_count() == 1
    assert safety_metrics.get_pass_rate() == 0.5


def test_model_drift(safety_metrics):
    # Test case: Model drift detection
    baseline = {
        "pass_rate": 0.95,
        "warning_rate": 0.05
    }
    current = {
        "pass_rate": 0.85,
        "warning_rate": 0.15
    }
    drift = safety_metrics.calculate_drift(baseline, current)
    assert drift["pass_rate"] > 0.1  # Significant drift
    assert drift["warning_rate"] > 0.1  # Significant drift
