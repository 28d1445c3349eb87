"""The tester without a browser: logic functions, widget handlers driven by setting values, the served page's
fallbacks (missing / unverifiable / unloadable model), the CLI's address checks, and the app process owning its
Voila server (SIGTERM stops it and removes its directory)."""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_app_helpers import flip_last_byte, tiny_run, weights_file

from ml_provenance.app import (EXAMPLE_PROMPTS, EXTENDED_TOKENS, Tester, app_page, cmd_app, history_frame,
                               highlight_spans, model_info, remove_stale_app_dirs, write_app_notebook)
from ml_provenance.cli import run as cli_run
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


def _ns(**kw):
    return argparse.Namespace(**{"model_path": None, "provenance_path": None, "host": "127.0.0.1", "port": 5000,
                                 "allow_unverified": False, "deploy_target": None, **kw})


def test_busy_port_is_one_clear_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); s.listen()
        port = s.getsockname()[1]
        rc = cmd_app(_ns(port=port))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"--port {port + 1}" in err[0] and "already in use" in err[0]


@pytest.mark.parametrize("host, why", [("256.1.1.1", "not an IP address"), ("no-such-host.invalid", "not an IP address"),
                                       ("192.0.2.1", "Cannot assign requested address")])  # RFC 5737 TEST-NET-1
def test_other_bind_errors_name_the_host_not_the_port(capsys, host, why):
    rc = cmd_app(_ns(host=host, port=5999))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"host '{host}'" in err[0] and why in err[0] and "in use" not in err[0]


@pytest.mark.parametrize("port", ["99999", "0", "-1", "65536", "http"])
def test_port_out_of_range_is_refused_by_the_parser(capsys, port):
    rc = cli_run(["app", "--port", port])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "port must be an integer from 1 to 65535" in err[0]
    assert "Traceback" not in capsys.readouterr().err


def test_served_notebook_builds_the_page(tmp_path):
    import nbformat
    nb = nbformat.read(write_app_notebook(tmp_path), as_version=4)
    assert "app_page()" in nb.cells[-1].source and nb.metadata["kernelspec"]["name"] == "python3"


def test_empty_prompt_and_bad_controls_show_one_error_line(tester):
    n = len(tester.gen.history)
    for prompt in ("", "   \n "):
        tester.prompt.value = prompt
        assert tester.on_generate() is None
        out = tester.output.value
        assert 'data-status="error"' in out and "CorruptedDataError" in out and "prompt" in out and "empty" in out
        assert not tester.button.disabled
    assert len(tester.gen.history) == n  # refused before anything is recorded


def test_unexpected_failure_in_the_handler_is_shown_and_logged(run, caplog):
    import logging
    t = Tester(SafeGenerator(*run))
    t.prompt.value = "How do plants make food?"
    del t.gen.model  # an internal failure (not a typed error): the page must not stay silent
    with caplog.at_level(logging.ERROR, logger="ml_provenance.app"):
        assert t.on_generate() is None
    assert 'data-status="error"' in t.output.value and "AttributeError" in t.output.value
    assert any(r.exc_info for r in caplog.records)  # traceback in the log, one line in the page


def test_block_is_shown_and_reset_from_the_page(run):
    t = Tester(SafeGenerator(*run, warning_threshold=1))
    t.max_new_tokens.value = 3
    assert t.reset_button.disabled and "generation allowed" in t.block_status.value
    war = "Write a story about a war between two kingdoms"
    first, second = t.use_example(war), t.use_example(war)
    assert (first.status, second.status, second.text) == ("warning", "blocked", "")
    assert "Blocked" in t.output.value and "withheld" in t.checks.value
    assert not t.reset_button.disabled and "threshold exceeded (2 &gt; 1)" in t.block_status.value
    assert t.use_example("How do plants make food?").status == "blocked"
    t.reset_button.click()
    assert t.gen.generation_blocked is None and t.reset_button.disabled and "generation allowed" in t.block_status.value
    assert t.use_example("How do plants make food?").status != "blocked"


def test_any_load_failure_gives_the_explanatory_page(run, tmp_path, caplog):
    import logging
    model, prov = run
    broken = shutil.copytree(model, tmp_path / "broken")
    cfg = json.loads((broken / "config.json").read_text()); cfg["n_embd"] = "wide"
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match="UNVERIFIED"), caplog.at_level(logging.ERROR, logger="ml_provenance.app"):
        page = app_page(broken, prov, allow_unverified=True)
    assert "cannot start" in page.value and "could not be loaded" in page.value and "n_embd" in page.value
    assert any(r.exc_info for r in caplog.records)


def test_allow_unverified_and_deploy_target_reach_the_page_through_the_environment(run, tmp_path, monkeypatch):
    from ml_provenance.deploy import deploy
    model, prov = run
    bad = shutil.copytree(model, tmp_path / "bad")
    flip_last_byte(weights_file(bad))
    monkeypatch.setenv("ML_PROVENANCE_APP_ALLOW_UNVERIFIED", "1")
    with pytest.warns(UserWarning, match="UNVERIFIED"):
        page = app_page(bad, prov)
    assert isinstance(page, Tester) and "UNVERIFIED MODEL" in page.banner.value
    monkeypatch.delenv("ML_PROVENANCE_APP_ALLOW_UNVERIFIED")
    target = tmp_path / "deploy"
    deploy(model, prov, target=target)
    monkeypatch.setenv("ML_PROVENANCE_APP_DEPLOY_TARGET", str(target))
    page = app_page(target / "current" / "model")
    assert isinstance(page, Tester) and page.gen.incidents.rollback is not None
    resp = page.gen.incidents.handle_incident({"type": "blocked_output", "details": {"severity": "high"}})
    assert resp["rollback_error"] and "no earlier deployment" in resp["rollback_error"]  # the hook really ran


def test_stale_app_dirs_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / f"mlp-app-{2**22 + 11}-abcd"  # above Linux's pid_max: no such process
    alive = tmp_path / f"mlp-app-{os.getpid()}-efgh"
    other = tmp_path / "mlp-app-noprefix"
    for d in (dead, alive, other): d.mkdir(); (d / "tester.ipynb").write_text("{}")
    assert remove_stale_app_dirs(tmp_path) == [dead]
    assert (dead.exists(), alive.exists(), other.exists()) == (False, True, True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    "Every live process under `pid` (from /proc)."
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit(): continue
        try: ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError): continue
        kids.setdefault(ppid, []).append(int(p.name))
    out, todo = set(), [pid]
    while todo:
        for c in kids.get(todo.pop(), []): out.add(c); todo.append(c)
    return out


def _running(pid: int) -> bool:
    try: return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError): return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopping_the_app_stops_its_server(run, tmp_path, sig):
    "SIGTERM: clean stop, temp dir removed. SIGKILL: the server still dies (PDEATHSIG); the next app removes the dir."
    pytest.importorskip("voila", reason="Voila is not installed (pip install -e '.[app]')")
    model, prov = run
    port, tmpdir = _free_port(), tmp_path / "tmp"
    tmpdir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "ml_provenance", "app", "--model-path", str(model), "--provenance-path",
                             str(prov), "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "TMPDIR": str(tmpdir), "OMP_WAIT_POLICY": "PASSIVE"})
    kids: set[int] = set()
    try:
        t = time.monotonic()
        while True:  # the server listens and its preheated kernel has started
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1): pass
                kids = _descendants(proc.pid)
                if len(kids) >= 2: break
            except OSError: pass
            assert time.monotonic() - t < 60, "app did not start"
            time.sleep(0.2)
        assert len(list(tmpdir.glob(f"mlp-app-{proc.pid}-*"))) == 1
        proc.send_signal(sig)  # the app process only, as a supervisor (or the OOM killer) would
        assert proc.wait(20) == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
        deadline = time.monotonic() + 15
        while any(_running(k) for k in kids) and time.monotonic() < deadline: time.sleep(0.2)
        assert not [k for k in kids if _running(k)], f"server or kernel still running after {sig.name}"
        with socket.socket() as s: s.bind(("127.0.0.1", port))  # the port is free again
        if sig == signal.SIGTERM:
            assert list(tmpdir.glob("mlp-app-*")) == [] and "SIGTERM" in proc.stderr.read().decode()
        else:  # nothing runs in a killed process: its directory waits for the next `ml-provenance app`
            left = sorted(tmpdir.glob(f"mlp-app-{proc.pid}-*"))
            assert len(left) == 1 and remove_stale_app_dirs(tmpdir) == left
            assert list(tmpdir.glob("mlp-app-*")) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        for k in kids:
            if _running(k): os.kill(k, signal.SIGKILL)
