"""Validate an app's files with Python's own parser.

Reads JSON requests on stdin, one per line, and answers each with one line
on stdout. A request is:
  {"files": [{"name": str, "content": str}], "entrypoint": str, "allowed": [str],
   "installed": [str], "provided": [str], "compile": bool}
and its answer:
  {"errors": [{"file": str, "line": int, "column": int, "message": str}],
   "compiled": [{"name": str, "content": base64}]}
where compiled, asked for and only when there are no errors, holds each
Python file compiled as the runner's Python compiles it when importing it, as
the file its import looks for (see compiled).

Only the standard library is used, so this runs in the runners' interpreter
with -I -S in a few milliseconds. It never executes the code it checks.
"""
import ast
import base64
import importlib.util
import json
import marshal
import sys
import warnings


def allowed_module(name, allowed, local):
    if "*" in allowed:
        return True
    top = name.split(".")[0]
    if top in local:
        return True
    for a in allowed:
        if name == a or name.startswith(a + "."):
            return True
    return False


def defines_app(body):
    for node in body:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name) and n.id == "app":
                        return True
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == "app":
                return True
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if (alias.asname or alias.name.split(".")[0]) == "app":
                    return True
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            blocks = [node.body, getattr(node, "orelse", [])]
            blocks += [h.body for h in getattr(node, "handlers", [])]
            blocks.append(getattr(node, "finalbody", []))
            if any(defines_app(b) for b in blocks):
                return True
    return False


def check(req):
    files = req.get("files", [])
    entry = req.get("entrypoint") or "app.py"
    # provided: the top-level modules of the app's own dependencies
    # (requirements.txt), allowed and installed for this app.
    provided = req.get("provided") or []
    allowed = (req.get("allowed") or []) + provided
    installed = set(req.get("installed") or [])
    if installed:
        installed |= set(provided)
    errors = []
    local = set()
    for f in files:
        name = f["name"]
        if name.endswith(".py"):
            local.add(name[:-3].split("/")[0])
        elif "/" in name:
            local.add(name.split("/")[0])
    trees = {}
    for f in files:
        name = f["name"]
        if not name.endswith(".py"):
            continue
        try:
            trees[name] = ast.parse(f["content"], filename=name)
        except SyntaxError as e:
            errors.append({"file": name, "line": e.lineno or 1, "column": e.offset or 0,
                           "message": "SyntaxError: " + (e.msg or "invalid syntax")})
        except ValueError as e:  # e.g. source contains null bytes
            errors.append({"file": name, "line": 1, "column": 0, "message": str(e)})
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if not allowed_module(alias.name, allowed, local):
                        errors.append(bad_import(name, node, alias.name))
                    elif missing(alias.name, installed, local):
                        errors.append(not_installed(name, node, alias.name))
            elif isinstance(node, ast.ImportFrom):
                if node.level > 0 or node.module is None:
                    continue
                if not allowed_module(node.module, allowed, local) and not all(
                        allowed_module(node.module + "." + a.name, allowed, local) for a in node.names):
                    errors.append(bad_import(name, node, node.module))
                elif missing(node.module, installed, local):
                    errors.append(not_installed(name, node, node.module))
    if entry not in {f["name"] for f in files}:
        errors.append({"file": entry, "line": 0, "column": 0,
                       "message": "entrypoint %s is missing: add a file named %s or choose another entrypoint" % (entry, entry)})
    elif entry in trees and not defines_app(trees[entry].body):
        errors.append({"file": entry, "line": 1, "column": 0,
                       "message": "%s must define `app` at module level, for example `app = FastAPI()`" % entry})
    errors.sort(key=lambda e: (e["file"], e["line"], e["column"]))
    return errors


def bad_import(name, node, module):
    return {"file": name, "line": node.lineno, "column": node.col_offset + 1,
            "message": "import of %r is not allowed: allowed packages are listed in the platform's import allowlist,"
                       " and packages on its dependency allowlist may be declared in requirements.txt" % module}


def missing(module, installed, local):
    top = module.split(".")[0]
    return bool(installed) and top not in local and top not in installed


def not_installed(name, node, module):
    top = module.split(".")[0]
    hint = ""
    if top == "fasthtml":
        hint = (" FastHTML apps need the python-fasthtml package, which the runner image installs"
                " (deploy/images/runner.Dockerfile); Debian has no package for it, so on a local runtime"
                " install it with pip into the interpreter given to `gofastapi dev --python`.")
    return {"file": name, "line": node.lineno, "column": node.col_offset + 1, "runtime": True,
            "message": "module %r is allowed but not installed in this platform's Python runtime, so the app"
                       " would fail at start.%s" % (top, hint)}


def compiled(files):
    """Each Python file of files compiled, as an unchecked hash-based pyc
    (PEP 552: magic number, flags 0b01, the source's hash, the marshalled
    code) named as the import looks for it, __pycache__/NAME.TAG.pyc beside
    the file. Unchecked, Python loads it without reading the source: the
    runner writes it beside the very source it was compiled from. The code
    is compiled from the file's bytes, as an import does (a coding cookie
    applies), with none of this module's compiler flags. A file that does
    not compile (a SyntaxError only the compiler finds, such as `return`
    outside a function) is left out: its import then fails with the error,
    as it would have. Warnings are the import's to show, not this one's; a
    pyc shows none, as with any cached module."""
    out = []
    for f in files:
        name = f["name"]
        if not name.endswith(".py"):
            continue
        source = f["content"].encode("utf-8")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                code = compile(source, name, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            continue
        pyc = importlib.util.MAGIC_NUMBER + (0b01).to_bytes(4, "little") + importlib.util.source_hash(source)
        out.append({"name": importlib.util.cache_from_source(name),
                    "content": base64.b64encode(pyc + marshal.dumps(code)).decode("ascii")})
    return out


def main():
    for line in sys.stdin:
        try:
            req = json.loads(line)
            out = {"errors": check(req)}
            if req.get("compile") and not out["errors"]:
                out["compiled"] = compiled(req.get("files", []))
        except Exception as e:  # a bug here must not take the server down
            out = {"fatal": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


main()
