"""Fail on broken documentation cross-references that can be detected without Quarto.

nbdev turns a backticked name in a markdown cell into a link when it resolves to an exported symbol
(`ml_provenance/_modidx.py`); a name that does not resolve silently renders as plain code. This script finds
such names, relative links to missing pages, and sidebar entries or navbar links (`_quarto.yml`) that point at notebooks that do not exist.

Checked (pragmatic, few false positives):
- `ml_provenance.x.y[.z]` dotted paths: must be a module, an exported symbol, or an attribute of one;
- `provenance.capture.scan_model`-style paths whose head is a subpackage (`provenance`, `safety`, `training`) or a
  top-level module (`demo`, `generation`, `app`, `deploy`, `cli`), or an unambiguous submodule (`hash_config`,
  `merkle_tree`, `capture`, `signing`, `encryption`, `attest`, `lexicon`, `incident`);
- `Name.attr` whose head `Name` is a package symbol: `attr` must be a method, property, field or attribute of it;
- bare CamelCase names (`SafetyChecker`): must be a package symbol, or a name from the libraries the docs talk
  about (builtins, torch, transformers, ...).
Ignored: code spans with spaces, quotes, `=`, or parentheses with arguments; file names (`config.json`);
fenced code blocks.

Usage: python scripts/check_docs.py [--root DIR]   (exit 0: clean, 1: problems listed as `file: name: reason`)
"""
import argparse
import builtins
import dataclasses
import importlib
import json
import re
import sys
from pathlib import Path

PKG = "ml_provenance"
# heads of `x.y` paths that are unambiguously modules of this package (names also used as variables are left out)
SUBPACKAGES = {"provenance", "safety", "training"}
TOP_MODULES = {"demo", "generation", "app", "deploy", "cli"}
UNAMBIGUOUS = {"hash_config": "provenance", "merkle_tree": "provenance", "capture": "provenance",
               "signing": "provenance", "encryption": "provenance", "attest": "provenance",
               "lexicon": "safety", "incident": "safety"}
# external namespaces a bare CamelCase name may come from
EXTERNAL = ["builtins", "io", "enum", "numbers", "pathlib", "dataclasses", "typing", "collections", "argparse",
            "transformers", "torch", "torch.nn", "torch.nn.parallel", "torch.utils.data", "tokenizers",
            "safetensors", "cryptography.exceptions", "pandas", "matplotlib.figure", "ipywidgets"]
# names from specifications the docs cite that are no Python symbol anywhere (in-toto, SLSA, CycloneDX)
SPEC_TERMS = {"DigestSet", "ResourceDescriptor", "BuildDefinition", "RunDetails"}
FILE_EXT = re.compile(r"\.(json|md|py|pt|bin|txt|yml|yaml|toml|ipynb|safetensors|sh|csv|html|png|key|pub|lock|cfg)$")
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
IDENT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
CAMEL = re.compile(r"[A-Z][A-Za-z0-9]*[a-z0-9][A-Z][A-Za-z0-9]*")


def load_syms(root:Path) -> dict:
    "The `syms` table of `_modidx.py`: module -> {qualified name: (doc link, file)}."
    ns = {}
    exec((root / PKG / "_modidx.py").read_text(), ns)
    return ns["d"]["syms"]


class Resolver:
    "Resolves names against the exported symbols, importing a module only to look up attributes of its symbols."
    def __init__(self, syms:dict):
        self.modules = set(syms)
        self.qual = {q for m in syms.values() for q in m}
        # public top-level symbol name -> fully qualified names
        self.by_name = {}
        for mod, table in syms.items():
            for q in table:
                rest = q[len(mod) + 1:]
                if "." not in rest and not rest.startswith("_"): self.by_name.setdefault(rest, []).append(q)
        self._ext = None
        self._all = None

    def in_all(self, name:str) -> bool:
        "Whether a module of the package exports `name` in `__all__` (aliases like `X = Y` are not in the index)."
        if self._all is None:
            self._all = set()
            for m in self.modules:
                try: self._all |= set(getattr(importlib.import_module(m), "__all__", ()))
                except Exception: continue
        return name in self._all

    def _obj(self, qual:str):
        mod, _, name = qual.rpartition(".")
        try: return getattr(importlib.import_module(mod), name)
        except Exception: return None

    def has_attr(self, quals:list, attr:str) -> bool:
        for q in quals:
            if f"{q}.{attr}" in self.qual: return True
            obj = self._obj(q)
            if obj is None: continue
            if hasattr(obj, attr): return True
            if dataclasses.is_dataclass(obj) and attr in {f.name for f in dataclasses.fields(obj)}: return True
            if attr in getattr(obj, "__annotations__", {}): return True
        return False

    def full_path(self, path:str) -> str|None:
        "Problem with a fully qualified `ml_provenance....` path, or None if it resolves."
        if path in self.modules or path in self.qual: return None
        if any(m.startswith(path + ".") for m in self.modules): return None  # a package (`ml_provenance.safety`)
        # longest module prefix, then symbol, then attributes
        parts = path.split(".")
        for i in range(len(parts) - 1, 0, -1):
            mod = ".".join(parts[:i])
            if mod not in self.modules: continue
            rest = parts[i:]
            sym = f"{mod}.{rest[0]}"
            if sym not in self.qual:
                obj = self._obj(sym)  # module-level constants (COMMANDS, COMPONENTS) are not in the index
                if obj is None: return f"no symbol '{rest[0]}' in {mod}"
                return None if len(rest) == 1 or hasattr(obj, rest[1]) else f"'{rest[0]}' has no attribute '{rest[1]}'"
            if len(rest) == 1 or self.has_attr([sym], rest[1]): return None
            return f"{rest[0]} has no attribute '{rest[1]}'"
        return "no such module"

    def relative_path(self, path:str) -> str|None:
        "`provenance.capture.scan_model`-style paths as fully qualified ones (None: not a package path)."
        head = path.split(".")[0]
        if head in SUBPACKAGES or head in TOP_MODULES: return f"{PKG}.{path}"
        if head in UNAMBIGUOUS: return f"{PKG}.{UNAMBIGUOUS[head]}.{path}"
        return None

    def external(self, name:str) -> bool:
        if self._ext is None:
            self._ext = set(dir(builtins))
            for m in EXTERNAL:
                try: mod = importlib.import_module(m)
                except Exception: continue
                self._ext.add(m.split(".")[-1])
                self._ext |= {n for n in dir(mod) if not n.startswith("_")}
        if name in self._ext: return True
        try: return hasattr(importlib.import_module("transformers"), name)  # lazy module: not all names in dir()
        except Exception: return False

    def problem(self, span:str) -> str|None:
        "Why `span` is a broken reference, or None."
        s = span.strip()
        if s.endswith("()"): s = s[:-2]
        if not IDENT_PATH.fullmatch(s) or FILE_EXT.search(s): return None
        if s == PKG or s.startswith(PKG + "."): return self.full_path(s)
        if "." in s:
            if (full := self.relative_path(s)) is not None: return self.full_path(full)
            head, attr = s.split(".")[:2]
            if head in self.by_name:
                return None if self.has_attr(self.by_name[head], attr) else f"{head} has no attribute '{attr}'"
            return None
        if CAMEL.fullmatch(s) and s not in self.by_name and s not in SPEC_TERMS and not self.in_all(s) and not self.external(s):
            return "not an exported symbol of the package"
        return None


LINK = re.compile(r"\]\(([^)\s#]+\.(?:ipynb|qmd|md))(?:#[^)]*)?\)")

def markdown_links(nb_path:Path):
    "Yield relative links to notebooks/pages in the markdown cells of a notebook."
    nb = json.loads(nb_path.read_text())
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown": continue
        for target in LINK.findall(FENCE.sub("", "".join(cell.get("source", [])))):
            if not re.match(r"[a-z]+://", target): yield target


def markdown_spans(nb_path:Path):
    "Yield the inline code spans of the markdown cells of a notebook."
    nb = json.loads(nb_path.read_text())
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown": continue
        src = "".join(cell.get("source", []))
        src = FENCE.sub("", src)
        src = re.sub(r"``[^`]+``", "", src)  # double-backtick spans are literal text
        yield from SPAN.findall(src)


def sidebar_problems(nbs:Path) -> list[tuple[str, str, str]]:
    "Sidebar entries (`href` or plain paths) that name files missing from `nbs/`."
    import yaml
    side = nbs / "sidebar.yml"
    if not side.exists(): return []
    out = []
    def walk(items):
        for it in items or []:
            if isinstance(it, str): target = it
            elif isinstance(it, dict):
                walk(it.get("contents"))
                target = it.get("href")
            else: continue
            if target and not re.match(r"[a-z]+://", target) and not (nbs / target).exists():
                out.append((str(side), target, "sidebar entry names a file that does not exist"))
    walk(((yaml.safe_load(side.read_text()) or {}).get("website") or {}).get("sidebar", {}).get("contents"))
    return out


def navbar_problems(nbs:Path) -> list[tuple[str, str, str]]:
    "Navbar links in `_quarto.yml` that name files missing from `nbs/`."
    import yaml
    q = nbs / "_quarto.yml"
    if not q.exists(): return []
    nav = ((yaml.safe_load(q.read_text()) or {}).get("website") or {}).get("navbar") or {}
    out = []
    for it in (nav.get("left") or []) + (nav.get("right") or []):
        target = it.get("href") if isinstance(it, dict) else it
        if isinstance(target, str) and not re.match(r"[a-z]+://", target) and not (nbs / target).exists():
            out.append((str(q), target, "navbar link names a file that does not exist"))
    return out


def check(root:Path) -> list[tuple[str, str, str]]:
    "All problems as (file, name, reason)."
    sys.path.insert(0, str(root))
    res = Resolver(load_syms(root))
    nbs = root / "nbs"
    problems = []
    for nb in sorted(nbs.rglob("*.ipynb")):
        rel = nb.relative_to(root)
        if any(p.startswith(("_", ".")) for p in rel.parts[1:]): continue  # _proc, checkpoints
        seen = set()
        for span in markdown_spans(nb):
            if span in seen: continue
            seen.add(span)
            if (why := res.problem(span)) is not None: problems.append((str(rel), span, why))
        for target in markdown_links(nb):
            if not (nb.parent / target).exists(): problems.append((str(rel), target, "link to a page that does not exist"))
    problems += [(str(Path(f).relative_to(root)), n, w) for f, n, w in sidebar_problems(nbs) + navbar_problems(nbs)]
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent), help="project root")
    root = Path(ap.parse_args().root).resolve()
    problems = check(root)
    for f, name, why in problems: print(f"{f}: `{name}`: {why}")
    print(f"check_docs: {len(problems)} broken reference(s)" if problems else "check_docs: no broken references")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
