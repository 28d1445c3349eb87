"""Benchmark: SafeGenerator end-to-end request on the tiny model, and app start to first rendered page.

Goals (issue 8): median end-to-end request (input check + 50 new tokens + output check + ledger append + monitor)
<= 1 s, with safety checks + ledger + monitor <= 5 % of it; app start to first rendered page <= 15 s.
Requests run through SafeGenerator's default (prediction events with ledger durability "normal": no fsync per
append) and, side by side, through one opened with ledger_durability="full" (an fsync per append); the goals are
checked on the default.
Anchors measured in the same run: the bare `model.generate` call (same model, same sampling, no safety, no ledger)
and a Voila page of a one-line notebook (same server, same browser, no model).

    .venv/bin/python bench/bench_generation.py [--requests 30] [--no-app]
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
CHROMIUM = "/usr/bin/chromium"
PROMPTS = ["Tell me a fun fact about space", "What are the benefits of reading books?", "How do plants make food?"]


def bench_requests(root: Path, n: int) -> dict:
    import torch
    from ml_provenance.generation import SafeGenerator, make_tiny_run
    torch.set_num_threads(1)
    model, prov = make_tiny_run(root / "run")
    # the default generator (prediction events with ledger durability "normal") and the same with "full" (an fsync
    # per append), both on the same ledger directory: the setting is per connection
    gens = {"normal": SafeGenerator(model, prov), "full": SafeGenerator(model, prov, ledger_durability="full")}
    assert gens["normal"].tracker.ledger.durability == "normal"
    for g in gens.values():
        for p in PROMPTS: g.generate(p, max_new_tokens=50, seed=0)  # warm-up (first calls allocate)
    g = gens["normal"]
    anchor, tokens = [], []
    rows = {d: {k: [] for k in ("total", "generate", "check_input", "check_output", "ledger", "monitor", "overhead",
                                "other", "share")} for d in gens}
    for i in range(n):
        p = PROMPTS[i % len(PROMPTS)]
        # anchor: the bare Hugging Face call this request wraps, same prompt, seed and sampling
        torch.manual_seed(i)
        enc = g.tokenizer(p, return_tensors="pt")
        t = time.perf_counter()
        with torch.no_grad():
            out = g.model.generate(**enc, max_new_tokens=50, do_sample=True, temperature=0.8, top_k=50, top_p=0.95,
                                   pad_token_id=g.tokenizer.pad_token_id)
        anchor.append(time.perf_counter() - t)
        tokens.append(out.shape[1] - enc["input_ids"].shape[1])
        for d in (("normal", "full") if i % 2 else ("full", "normal")):  # alternate, so neither always goes first
            tm, r = gens[d].generate(p, max_new_tokens=50, seed=i).timings, rows[d]
            for k in ("total", "generate", "check_input", "check_output", "ledger", "monitor"): r[k].append(tm[k])
            r["overhead"].append(tm["check_input"] + tm["check_output"] + tm["ledger"] + tm["monitor"])
            r["share"].append(r["overhead"][-1] / tm["total"])
            r["other"].append(tm["total"] - tm["generate"] - r["overhead"][-1])  # stage bookkeeping, not timed apart
    fs = []
    for _ in range(n):  # anchor for the ledger: one durable 200-byte append on the same disk (what SQLite FULL does)
        t = time.perf_counter()
        with open(root / "fsync.bin", "ab") as f:
            f.write(b"x" * 200); f.flush(); os.fsync(f.fileno())
        fs.append(time.perf_counter() - t)
    med = statistics.median
    return {"fsync": med(fs), "anchor": med(anchor), "tokens": med(tokens), "n": n,
            "modes": {d: {k: med(v) for k, v in r.items()} for d, r in rows.items()}}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _time_page(cmd, url, selector, env) -> float:
    "Seconds from process start to `selector` rendered in Chromium (or to HTTP 200 without Chromium)."
    t = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        while True:  # wait until the server listens (a GET of the page would execute it in a kernel of its own)
            if proc.poll() is not None: raise SystemExit(f"server exited: {cmd}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1): break
            except OSError: time.sleep(0.1)
        if not os.path.exists(CHROMIUM):
            with urllib.request.urlopen(url, timeout=60): return time.monotonic() - t
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                  "--disable-background-networking", "--disable-component-update"])
            page = b.new_page()
            page.goto(url, timeout=60000)
            page.wait_for_selector(selector, timeout=60000)
            dt = time.monotonic() - t
            b.close()
        return dt
    finally:  # the app stops its Voila server on SIGTERM (kernel shutdown takes a few seconds under load)
        os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(30)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()


def bench_app(root: Path) -> dict:
    import nbformat
    from ml_provenance.generation import make_tiny_run
    model, prov = make_tiny_run(root / "apprun")
    env = {**os.environ}
    port = _free_port()
    app = _time_page([sys.executable, "-m", "ml_provenance", "app", "--model-path", str(model), "--provenance-path",
                      str(prov), "--port", str(port)], f"http://127.0.0.1:{port}/", ".mlp-prompt textarea", env)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import ipywidgets as W\nW.Textarea(value='hello').add_class('anchor')")]
    nbformat.write(nb, root / "hello.ipynb")
    port = _free_port()
    anchor = _time_page([sys.executable, "-m", "voila", str(root / "hello.ipynb"), "--no-browser", f"--port={port}",
                         "--Voila.ip=127.0.0.1"], f"http://127.0.0.1:{port}/", ".anchor textarea", env)
    return {"app": app, "anchor": anchor, "browser": os.path.exists(CHROMIUM)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--no-app", action="store_true", help="skip the app start measurement")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        r = bench_requests(Path(d), a.requests)
        m, an = r["modes"], r["anchor"]
        print(f"SafeGenerator, tiny model, {r['n']} requests, median {r['tokens']:.0f} new tokens (1 torch thread)")
        print("columns: ledger durability of the prediction events; 'normal' is SafeGenerator's default")
        print(f"{'measure (median)':44} {'normal':>10} {'full':>10} {'ratio (normal)':>16}")
        print(f"{'anchor: bare model.generate (50 tokens)':44} {an * 1e3:8.1f}ms {'':>10} {'1.00x':>16}")
        row = lambda label, k, unit=1e3, f="8.2f": print(  # noqa: E731
            f"{label:44} {m['normal'][k] * unit:{f}}ms {m['full'][k] * unit:{f}}ms", end="")
        row("end-to-end request (goal <= 1 s)", "total", f="8.1f")
        print(f" {m['normal']['total'] / an:15.2f}x")
        row("  generation", "generate", f="8.1f")
        print(f" {m['normal']['generate'] / an:15.2f}x")
        row("  checks + ledger + monitor", "overhead"); print()
        print(f"{'  share of end-to-end (goal <= 5 %)':44} {m['normal']['share'] * 100:9.1f}% {m['full']['share'] * 100:9.1f}%")
        for k, label in (("check_input", "check_input"), ("check_output", "check_output"),
                         ("ledger", "ledger append (with digests)"), ("monitor", "monitor")):
            row("    " + label, k); print()
        row("  other (outside the timed stages)", "other"); print()
        print(f"{'anchor: one fsync-ed 200-byte append, same disk':44} {r['fsync'] * 1e3:8.2f}ms "
              f"{'':>10} {m['full']['ledger'] / r['fsync']:8.2f}x (full ledger / fsync)")
        ok = m["normal"]["total"] <= 1.0 and m["normal"]["share"] <= 0.05
        if not a.no_app:
            s = bench_app(Path(d))
            what = "first rendered page" if s["browser"] else "page served (no chromium)"
            print(f"{'anchor: Voila one-widget page, ' + what:44} {s['anchor']:9.2f}s {'1.00x':>12}")
            print(f"{'ml-provenance app, ' + what + ' (goal <= 15 s)':44} {s['app']:9.2f}s {s['app'] / s['anchor']:11.2f}x")
            ok = ok and s["app"] <= 15
        print("goals met" if ok else "GOALS NOT MET")


if __name__ == "__main__":
    main()
