package runner

import (
	"encoding/json"
	"strings"
	"testing"
)

// lazyCheck loads the bootstrap as a module into a Python that has imported
// the framework, imports routesApp and brokenApp as FastAPI sets routes up
// (eagerly), then installs lazy_routes and imports them again, and reports
// what a client and the app can tell of each (answers, url_path_for, the
// OpenAPI document, the routes' attributes), how many routes were still
// not set up along the way, and what set_up_routes printed.
const lazyCheck = `import asyncio, contextlib, importlib.util, io, json, sys, warnings
warnings.simplefilter("ignore")
spec = importlib.util.spec_from_file_location("bootstrap", sys.argv[1])
bootstrap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bootstrap)
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

APP = sys.argv[2]
BROKEN = sys.argv[3]

def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

def api_routes(app):
    return [r for r in app.routes if isinstance(r, APIRoute)]

REQUESTS = [
    ("GET", "/v1/items/3", None, {}),
    ("GET", "/v1/items/0", None, {}),
    ("POST", "/v1/items/", {"name": "a", "price": 2}, {}),
    ("POST", "/v1/items/", {"price": "x"}, {}),
    ("GET", "/users/abc?q=2", None, {"x-token": "t"}),
    ("GET", "/users/abc?q=notint", None, {}),
    ("POST", "/multi", None, {}),
    ("PUT", "/multi", None, {}),
    ("GET", "/link", None, {}),
    ("GET", "/nope", None, {}),
]

def observe(mod, lazy):
    out = {}
    if lazy:
        out["lazy_after_import"] = sum(bootstrap._LAZY in vars(r) for r in api_routes(mod.app))
        out["router_lazy_after_include"] = sum(bootstrap._LAZY in vars(r) for r in mod.router.routes)
    c = TestClient(mod.app, raise_server_exceptions=False)
    first = c.get("/v1/items/3")
    if lazy:
        out["lazy_after_first"] = sum(bootstrap._LAZY in vars(r) for r in api_routes(mod.app))
    out["first"] = (first.status_code, first.text)
    out["answers"] = [(m, p, (lambda r: (r.status_code, r.text, r.headers.get("content-type")))(c.request(m, p, json=j, headers=h))) for m, p, j, h in REQUESTS]
    if lazy:
        out["lazy_after_requests"] = sum(bootstrap._LAZY in vars(r) for r in api_routes(mod.app))
    out["url"] = str(mod.app.url_path_for("read_item", item_id=7))
    out["openapi"] = c.get("/openapi.json").json()
    out["routes"] = [
        {k: repr(getattr(r, k)) for k in ("path", "name", "tags", "summary", "description", "status_code",
            "operation_id", "unique_id", "include_in_schema", "deprecated", "response_description", "responses")}
        | {"methods": sorted(r.methods), "keys": sorted(vars(r)), "model": getattr(r.response_model, "__name__", repr(r.response_model))}
        for r in api_routes(mod.app)
    ]
    return out

eager = observe(load("eager_app", APP), False)
try:
    load("eager_broken", BROKEN)
    eager_broken = "imported"
except Exception as exc:
    eager_broken = type(exc).__name__

bootstrap.lazy_routes()
installed = bootstrap._route_setup is not None
lazy = observe(load("lazy_app", APP), True)
counts = {k: lazy.pop(k) for k in ("lazy_after_import", "router_lazy_after_include", "lazy_after_first", "lazy_after_requests")}
broken = load("lazy_broken", BROKEN)
c = TestClient(broken.app, raise_server_exceptions=False)
ok, bad = c.get("/ok").status_code, c.get("/bad").status_code
bootstrap.SET_UP_ROUTES_AFTER = 0
err = io.StringIO()
with contextlib.redirect_stderr(err):
    asyncio.run(bootstrap.set_up_routes())
later = APIRoute("/later", lambda: None)
print(json.dumps({
    "installed": installed,
    "same": eager == lazy,
    "diff": [k for k in eager if eager[k] != lazy.get(k)],
    "counts": counts,
    "eager_broken": eager_broken,
    "broken": [ok, bad],
    "log": err.getvalue(),
    "left": len(bootstrap._lazy_routes),
    "later_lazy": bootstrap._LAZY in vars(later),
}))
`

// routesApp declares routes every way the lazy routes have to match FastAPI
// in: a router with a prefix, tags, dependencies and responses, included
// with a prefix; a response model, a return annotation, a status enum, a
// docstring cut at a form feed; several methods; url_path_for; and an
// attribute the app sets on a route after declaring it.
const routesApp = `from http import HTTPStatus
from typing import Optional
from fastapi import FastAPI, APIRouter, Depends, Header, HTTPException
from fastapi.routing import APIRoute
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    price: float = 0


def common(x_token: Optional[str] = Header(None)):
    return x_token


router = APIRouter(prefix="/items", tags=["items"], dependencies=[Depends(common)])


@router.get("/{item_id}", response_model=Item, responses={404: {"description": "missing"}})
def read_item(item_id: int):
    """Reads one item.

    More.\fhidden"""
    if item_id == 0:
        raise HTTPException(404, "missing")
    return {"name": f"n{item_id}", "price": 1.5, "secret": "x"}


@router.post("/", status_code=HTTPStatus.CREATED)
def create(item: Item) -> Item:
    return item


app = FastAPI()
app.include_router(router, prefix="/v1")


@app.get("/users/{uid}", summary="user", deprecated=True)
async def user(uid: str, q: Optional[int] = None, tok=Depends(common)):
    return {"uid": uid, "q": q, "tok": tok}


@app.api_route("/multi", methods=["get", "post"], name="multi")
def multi():
    return {"ok": True}


@app.get("/link")
def link():
    return {"url": app.url_path_for("user", uid="u1")}


for route in app.routes:
    if isinstance(route, APIRoute) and route.name == "multi":
        route.operation_id = "multi_op"
`

// brokenApp has a route whose parameter type FastAPI cannot use.
const brokenApp = `from fastapi import FastAPI

app = FastAPI()


class NotAModel:
    pass


@app.get("/ok")
def ok():
    return {"ok": 1}


@app.get("/bad")
def bad(x: NotAModel):
    return {}
`

func TestRoutesAreSetUpOnFirstUse(t *testing.T) {
	out := runBootstrapCheck(t, lazyCheck, "app.py", routesApp, "broken.py", brokenApp)
	var got struct {
		Installed   bool
		Same        bool
		Diff        []string
		Counts      map[string]int
		EagerBroken string `json:"eager_broken"`
		Broken      []int
		Log         string
		Left        int
		LaterLazy   bool `json:"later_lazy"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if !got.Installed {
		t.Fatal("lazy_routes did not install: its probe routes differed from FastAPI's")
	}
	if !got.Same {
		t.Errorf("the app with lazy routes differs from FastAPI's in %v", got.Diff)
	}
	// Importing sets up none of the app's five routes, and include_router
	// reads the router's two without setting them up; a request sets up
	// only its own.
	want := map[string]int{"lazy_after_import": 5, "router_lazy_after_include": 2, "lazy_after_first": 4, "lazy_after_requests": 0}
	for k, v := range want {
		if got.Counts[k] != v {
			t.Errorf("routes not set up, %s: %d, want %d", k, got.Counts[k], v)
		}
	}
	if got.EagerBroken != "FastAPIError" {
		t.Errorf("importing the broken app as FastAPI does: %s, want FastAPIError", got.EagerBroken)
	}
	// With lazy routes the broken route fails alone, and is reported.
	if len(got.Broken) != 2 || got.Broken[0] != 200 || got.Broken[1] != 500 {
		t.Errorf("broken app: GET /ok and /bad answered %v, want [200 500]", got.Broken)
	}
	for _, want := range []string{"route GET /bad (bad in ", "broken.py, line 15) could not be set up", "FastAPIError: Invalid args"} {
		if !strings.Contains(got.Log, want) {
			t.Errorf("set_up_routes printed %q, want it to contain %q", got.Log, want)
		}
	}
	if got.Left != 0 {
		t.Errorf("set_up_routes left %d routes", got.Left)
	}
	if got.LaterLazy {
		t.Error("a route declared after set_up_routes is lazy; want it set up as FastAPI does")
	}
}
