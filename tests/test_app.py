"""The tester without a browser: logic functions, widget handlers driven by setting values, the served page's
fallbacks (missing / unverifiable model) and the CLI's busy-port line."""
import argparse
import shutil
import socket

import pytest
from deploy_app_helpers import flip_last_byte, tiny_run, weights_file

from ml_provenance.app import (EXAMPLE_PROMPTS, EXTENDED_TOKENS, Tester, app_page, cmd_app, history_frame,
                               highlight_spans, model_info, write_app_notebook)
from ml_provenance.generation import SafeGenerator


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("app") / "run")


@pytest.fixture
def tester(run):
    return Tester(SafeGenerator(*run))


def test_model_info(run):
    info = model_info(SafeGenerator(*run))
    assert info.verified and info.verification == "verified" and info.dataset_size == 6
    assert info.training_config["preset"] == "tiny-random" and info.safety_config["max_input_length"] == 512
    assert info["merkle_root"] and info.last_modified.endswith("+00:00")
    assert list(info.to_frame().index)[:2] == ["path", "last modified"]


def test_generate_handler_updates_every_view(tester):
    before = dict((k, w.value) for k, w in tester.images.items())
    tester.prompt.value, tester.max_new_tokens.value, tester.seed.value = "Tell me a fun fact about space", 12, 3
    r = tester.on_generate()
    assert r.status in ("safe", "warning") and r.max_new_tokens == 12 and r.prompt == "Tell me a fun fact about space"
    assert "mlp-text" in tester.output.value and r.prediction_id[:16] in tester.output.value
    assert "Input checks" in tester.checks.value and "Output checks" in tester.checks.value
    assert all(tester.images[k].value != before[k] for k in ("pass_rate",))  # redrawn
    assert "mlp-history" in tester.history.value and len(history_frame(tester.gen.history)) == 1
    same = tester.on_generate()  # same seed, same controls: same sample
    assert same.text == r.text


def test_example_buttons_and_warnings_above_output(tester):
    tester.example_buttons["Write a story about a war between two kingdoms"].click()
    r = tester.gen.history[-1]
    assert r.status == "warning" and r.warnings
    out = tester.output.value
    assert out.index("Content warnings") < out.index("mlp-text")  # warnings shown above the output
    tester.example_buttons[EXAMPLE_PROMPTS["Inappropriate content"][0]].click()
    assert tester.gen.history[-1].status == "blocked" and "<mark" in tester.checks.value
    tester.example_buttons[EXAMPLE_PROMPTS["Length limit tests"][0]].click()
    long = tester.gen.history[-1]
    assert long.status == "blocked" and "length" in long.reason
    tester.example_buttons[EXAMPLE_PROMPTS["Length limit tests"][1]].click()
    ext = tester.gen.history[-1]
    assert tester.max_new_tokens.value == EXTENDED_TOKENS and ext.max_new_tokens == tester.gen.config.max_output_length
    assert list(history_frame(tester.gen.history).status)[:3] == ["warning", "blocked", "blocked"]


def test_highlight_escapes_markup():
    h = highlight_spans("<b>kill</b>", [{"span": (3, 7), "category": "violence", "severity": 3}])
    assert h == '&lt;b&gt;<mark title="violence (severity 3)">kill</mark>&lt;/b&gt;'


def test_explanatory_pages(run, tmp_path):
    missing = app_page(tmp_path / "nope")
    assert "cannot start" in missing.value and "Check the artifacts directory" in missing.value
    model, prov = run
    bad = shutil.copytree(model, tmp_path / "bad")
    flip_last_byte(weights_file(bad))
    page = app_page(bad, prov)
    assert "HashMismatchError" in page.value and "weights" in page.value and "rollback" in page.value


def test_unverified_override_shows_a_banner(run, tmp_path):
    model, prov = run
    bad = shutil.copytree(model, tmp_path / "bad")
    flip_last_byte(weights_file(bad))
    with pytest.warns(UserWarning, match="UNVERIFIED"):
        t = Tester(SafeGenerator(bad, prov, allow_unverified=True))
    assert "UNVERIFIED MODEL" in t.banner.value
    t.prompt.value = "How do plants make food?"
    assert t.on_generate().verified is False and "UNVERIFIED MODEL" in t.output.value


def test_busy_port_is_one_clear_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); s.listen()
        port = s.getsockname()[1]
        rc = cmd_app(argparse.Namespace(model_path=None, provenance_path=None, host="127.0.0.1", port=port))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"--port {port + 1}" in err[0]


def test_served_notebook_builds_the_page(tmp_path):
    import nbformat
    nb = nbformat.read(write_app_notebook(tmp_path), as_version=4)
    assert "app_page()" in nb.cells[-1].source and nb.metadata["kernelspec"]["name"] == "python3"
