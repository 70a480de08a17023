"""gofastapi runner bootstrap: the Python half of a generic runner.

A runner process has a scrubbed environment and two extra pipes: fd 3 carries
commands from the Go agent (runner/python.go), fd 4 carries events to it, one
JSON object per line. stdout and stderr belong to the app's logs. It comes to
be in one of two ways:

- Exec mode (`bootstrap.py`): the agent starts this file, which binds the
  app's listening socket and pre-imports the framework itself (step 1).
- Zygote mode (`bootstrap.py --zygote SOCKET`): one long-lived process
  pre-imports the framework once, then only forks runners on request (see
  serve_zygote). Each forked child takes the pipes the agent sent as its
  fds 1-4, then continues at step 0 with the imports already done. The
  zygote never runs user code and never creates an event loop.

0. With GOFASTAPI_CONFINE=1 in its environment, confine itself to its
   directory, the current one, and, for reading, the system's and Python's
   directories (see confine_runner), before any thread.
1. Bind the app's listening socket (see bind) and pre-import the
   framework, so that loading an app later costs only the app's own imports,
   with FastAPI setting each route up when it is first used (lazy_routes).
2. Start the asyncio event loop, warm up (see warm_up), report
   {"event": "listening", "port": P, "pid": PID} (or "socket": PATH for
   a Unix socket instead of "port") and wait for exactly one
   {"cmd": "load", "dir": D, "module": M, "file": F, "env": {...},
    "paths": [P...], "limits": {...}}, paths being optional: the app's
   dependencies; limits (memory, processes, file_size) are set first.
3. Import M from D (with D first on the import path, and the paths last, so
   that a dependency never replaces the framework the runner imported), take
   its `app`, serve it with uvicorn on the pre-bound socket and report
   {"event": "ready", "import_us": N} once uvicorn's startup completed, N
   being how long the import took in microseconds.
   On failure print the traceback to stderr, report
   {"event": "error", "message": LAST_TRACEBACK_LINE, "file": F, "line": N}
   (file and line of the innermost frame inside D, if any) and exit 1.

Until the load command, SIGTERM ends the process at once, and so does EOF on
fd 3 (the agent is gone). After it uvicorn handles SIGTERM: it stops
accepting, finishes in-flight requests and runs the app's shutdown, then
this process exits 0. The agent keeps fd 3 open while it lives; EOF on it
after the load means the agent died without stopping the app, and the
process kills itself (and, when forked, its process group).
"""

import asyncio
import collections
import contextlib
import contextvars
import ctypes
import enum
import errno
import fcntl
import functools
import gc
import http
import importlib
import inspect
import json
import logging
import os
import random
import re
import resource
import select
import selectors
import signal
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

CMD_FD = 3
EVENT_FD = 4

# A fork request carries the child's fds 3, 4, 1 and 2, in that order.
FORK_FDS = 4
# Bounds one fork request's JSON; it holds a directory and a few variables.
MAX_FORK_REQUEST = 64 << 10
# How long a connected client may take to send its request. The zygote
# serves one request at a time, so a stalled client stalls every runner start.
FORK_REQUEST_TIMEOUT = 5

# Loaded by uvicorn.Config.load() by name, or lazily on the first request; importing
# them now keeps that cost out of the cold start. Missing ones are fine.
OPTIONAL_IMPORTS = (
    "starlette",
    "pydantic",
    "pymongo",
    "jinja2",
    "anyio._backends._asyncio",
    "fastapi.responses",
    "fastapi.middleware.cors",
    "fastapi.templating",
    "fastapi.staticfiles",
    "uvicorn.lifespan.on",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.wsproto_impl",
    "uvicorn.protocols.websockets.websockets_impl",
)

# The heap a waiting runner grows for its app (see grow_heap): after this
# long unclaimed, this many steps, each of this many small objects of a few
# sizes, about 2 MB in all.
GROW_AFTER = 0.01
GROW_STEPS = 8
GROW_OBJECTS = 625
# What grow_heap keeps of it: one object in this many holds every arena
# (and so its pages) for the app.
GROW_KEEP = 256

_events = None
# What grow_heap left allocated; kept for the life of the process.
_grown = []

# The gateway's X-Request-Id of the request being served. uvicorn serves
# each request in a task of its own, which runs in a copy of the context,
# so a value set while serving one request is never seen by another.
request_id = contextvars.ContextVar("gofastapi_request_id", default="")


def emit(**event):
    if _events is None:
        return  # the zygote: failures go to stderr only
    _events.write(json.dumps(event) + "\n")
    _events.flush()


def fail(message, app_dir=None, frames=(), text=""):
    """Report a failure to the agent and exit 1. The traceback, if any, was
    already printed to stderr so it reaches the app's logs. The process
    ends at once, without unwinding: a request held for the app (the one
    sent ahead of its start) must go unanswered, and asyncio's shutdown
    would answer it, with a 500, as it cancelled the request's task."""
    file, line = innermost_app_frame(app_dir, frames, text)
    emit(event="error", message=message, file=file, line=line)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def last_line(text):
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else "unknown error"


def innermost_app_frame(app_dir, frames, text):
    """File (relative to app_dir) and line of the innermost traceback frame
    inside app_dir, from frames (filename, lineno) or else from traceback text."""
    if not app_dir:
        return "", 0
    prefix = os.path.join(app_dir, "")
    if not frames and text:
        frames = [(f, int(n)) for f, n in re.findall(r'File "([^"]+)", line (\d+)', text)]
    for filename, lineno in reversed(list(frames)):
        if filename and filename.startswith(prefix):
            return os.path.relpath(filename, app_dir), lineno or 0
    return "", 0


def fail_with_exception(exc, app_dir=None):
    text = "".join(traceback.format_exception(exc))
    sys.stderr.write(text)
    sys.stderr.flush()
    frames = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
    if isinstance(exc, SyntaxError) and exc.filename:
        frames.append((exc.filename, exc.lineno))
    fail(last_line("".join(traceback.format_exception_only(exc))), app_dir, frames)


def bind():
    """The app's listener: the Unix socket GOFASTAPI_APP_SOCKET names (the
    agent's --app-socket; in the runner's directory, which no other app's
    user may enter), else TCP on a port the kernel picks, at the address
    GOFASTAPI_APP_HOST names (a pod's, the agent's --app-host) or
    127.0.0.1."""
    path = os.environ.pop("GOFASTAPI_APP_SOCKET", "")
    host = os.environ.pop("GOFASTAPI_APP_HOST", "127.0.0.1")
    if path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # an earlier runner's, in a directory used again
        sock.bind(path)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Accepted connections inherit TCP_NODELAY on Linux. uvicorn wraps
        # the fd as AF_UNIX, so asyncio would not set it and small responses
        # could wait for a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, 0))
    sock.listen(1024)
    return sock


def listening_event(sock):
    """The "listening" event's place of the listener: its port, or its
    socket's path."""
    name = sock.getsockname()
    if isinstance(name, str):
        return {"socket": name}
    return {"port": name[1]}


def preimport():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except BaseException as exc:
        fail_with_exception(exc)
    for name in OPTIONAL_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    lazy_routes()
    # The framework's objects live as long as the process. Collect once now
    # and move the survivors out of the collector's sight: otherwise a full
    # collection (about 30 ms over them) can land in the middle of a cold start.
    gc.collect()
    gc.freeze()


# APIRoute.__init__ as FastAPI defines it, while lazy_routes has replaced it.
_route_setup = None
# Routes declared but not set up yet (see lazy_routes), in declaration order.
_lazy_routes = []
_lazy_lock = threading.RLock()
# What a lazy route keeps in its __dict__: the arguments it was declared with.
_LAZY = "_gofastapi_lazy"
# How long after its start a runner sets up the routes that no request has
# used yet (see set_up_routes): by then the first request has its answer and
# the replacement runner has been forked.
SET_UP_ROUTES_AFTER = 1.0


def lazy_routes():
    """Makes FastAPI set each route up when it is first used instead of when
    it is declared. Declaring a route is most of a small app's import here:
    for each one FastAPI reads the endpoint's signature and builds a pydantic
    field for each parameter and for the response (0.4-0.6 ms a route with
    two parameters, with FastAPI 0.92 on pydantic 1.10, which Debian ships
    uncompiled). A cold start serves one route; the others are set up a
    moment later (set_up_routes) or when first requested.

    A declared route (an APIRoute, not a subclass of it) gets what matching
    a request and url_path_for need (path, endpoint, name, methods, the
    path's regex and converters) and keeps its arguments; what
    include_router reads of it (tags, responses, response_model and the
    other arguments, as APIRoute stores them) is worked out on first
    access, cheaply. Any other attribute (the handler, the dependant, the
    response field) sets the route up: FastAPI's own __init__ runs with the
    same arguments, and what the route held before (including attributes
    the app set on it) is put back, so the route is what it would have
    been. A route whose set-up fails raises the same error each time it is
    used, as a 500 for a request, and set_up_routes prints it.

    Installed only if the running FastAPI behaves as this expects (checked
    on two probe routes, set up both ways); otherwise routes are set up as
    FastAPI does."""
    global _route_setup
    try:
        from fastapi import routing
        from starlette.routing import compile_path, get_name

        route_class = routing.APIRoute
        setup = route_class.__init__
        placeholder = routing.DefaultPlaceholder
        return_annotation = routing.get_typed_return_annotation
        is_subclass = routing.lenient_issubclass
        response_type = routing.Response
        defaults = {
            name: p.default
            for name, p in inspect.signature(setup).parameters.items()
            if p.kind is p.KEYWORD_ONLY
        }
    except Exception:
        return

    def declared(path, endpoint, kwargs):
        # What APIRoute.__init__ stores from its arguments before the
        # costly part, as it stores it.
        args = {**defaults, **kwargs}
        out = {k: args[k] for k in STORED if k in args}
        model = args.get("response_model")
        if isinstance(model, placeholder):
            annotation = return_annotation(endpoint)
            model = None if is_subclass(annotation, response_type) else annotation
        out["response_model"] = model
        out["tags"] = args.get("tags") or []
        out["responses"] = args.get("responses") or {}
        deps = args.get("dependencies")
        out["dependencies"] = list(deps) if deps else []
        description = args.get("description") or inspect.cleandoc(endpoint.__doc__ or "")
        out["description"] = description.split("\f")[0].strip()
        status = args.get("status_code")
        out["status_code"] = int(status) if isinstance(status, enum.IntEnum) else status
        return out

    def init(self, path, endpoint, **kwargs):
        if type(self) is not route_class:
            return setup(self, path, endpoint, **kwargs)
        d = self.__dict__
        d["path"] = path
        d["endpoint"] = endpoint
        name = kwargs.get("name")
        d["name"] = get_name(endpoint) if name is None else name
        d["path_regex"], d["path_format"], d["param_convertors"] = compile_path(path)
        d["methods"] = {m.upper() for m in kwargs.get("methods") or ["GET"]}
        d[_LAZY] = (path, endpoint, kwargs)
        _lazy_routes.append(self)

    def getattr_(self, name):
        d = self.__dict__
        if _LAZY in d and not name.startswith("__"):
            with _lazy_lock:
                if _LAZY in d and name in DECLARED:
                    path, endpoint, kwargs = d[_LAZY]
                    for k, v in declared(path, endpoint, kwargs).items():
                        d.setdefault(k, v)
                elif _LAZY in d:
                    set_up_route(self)
            return object.__getattribute__(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def set_up_route(self):
        d = self.__dict__
        lazy = d.pop(_LAZY)
        held = dict(d)
        try:
            setup(self, *lazy[:2], **lazy[2])
        except BaseException:
            d.clear()
            d.update(held)
            d[_LAZY] = lazy
            raise
        d.update(held)

    def probe(**kwargs):
        def endpoint(item: int, q: str = "") -> dict:
            """Probe.\fnot this"""

        eager = route_class.__new__(route_class)
        setup(eager, "/probe/{item}", endpoint, **kwargs)
        lazy = route_class.__new__(route_class)
        init(lazy, "/probe/{item}", endpoint, **kwargs)
        if any(getattr(lazy, k) != getattr(eager, k) for k in DECLARED):
            return False
        set_up_route(lazy)
        return lazy.__dict__.keys() == eager.__dict__.keys() and lazy.unique_id == eager.unique_id

    route_class.__getattr__ = getattr_
    try:
        ok = probe() and probe(
            status_code=http.HTTPStatus.CREATED,
            tags=["t"],
            responses={404: {"description": "none"}},
            dependencies=[routing.params.Depends(lambda: None)],
            summary="s",
            description="d\fx",
            methods=["post", "PUT"],
            name="n",
            response_model=None,
            include_in_schema=False,
        )
    except Exception:
        ok = False
    if not ok:
        del route_class.__getattr__
        return
    _route_setup = setup
    route_class.__init__ = init
    route_class._gofastapi_set_up = set_up_route


# APIRoute's attributes that hold its arguments as given, and all those
# lazy_routes answers without setting the route up.
STORED = (
    "summary", "response_description", "deprecated", "operation_id",
    "response_model_include", "response_model_exclude", "response_model_by_alias",
    "response_model_exclude_unset", "response_model_exclude_defaults",
    "response_model_exclude_none", "include_in_schema", "response_class",
    "dependency_overrides_provider", "callbacks", "openapi_extra",
    "generate_unique_id_function",
)
DECLARED = frozenset(STORED + (
    "path", "endpoint", "name", "methods", "path_regex", "path_format", "param_convertors",
    "response_model", "tags", "responses", "dependencies", "description", "status_code",
))


async def set_up_routes():
    """Sets up, one per turn of the event loop, the routes no request has
    used since the app started (see lazy_routes), once the start is over:
    what FastAPI would have done at import. Routes declared from now on are
    set up as FastAPI does. A route that cannot be set up is reported in the
    app's logs, with where it was declared; requests to it answer 500."""
    await asyncio.sleep(SET_UP_ROUTES_AFTER)
    from fastapi import routing

    routing.APIRoute.__init__ = _route_setup
    while _lazy_routes:
        route = _lazy_routes.pop(0)
        try:
            with _lazy_lock:
                if _LAZY in route.__dict__:
                    route._gofastapi_set_up()
        except Exception:
            code = getattr(route.endpoint, "__code__", None)
            where = ""
            if code is not None:
                # Relative to the app's directory, the working directory.
                file = os.path.relpath(code.co_filename)
                file = code.co_filename if file.startswith("..") else file
                where = f" ({code.co_name} in {file}, line {code.co_firstlineno})"
            print(
                f"gofastapi: route {','.join(sorted(route.methods))} {route.path}{where} could not be set up,"
                " so requests to it answer 500. FastAPI raised:\n" + traceback.format_exc(),
                file=sys.stderr,
                end="",
            )
        await asyncio.sleep(0)


class StartupErrors:
    """Collects the errors uvicorn logs while starting. For a failed lifespan
    startup one of them is the app's traceback (Starlette sends it as the
    lifespan.startup.failed message), followed by uvicorn's own summary."""

    def __init__(self):
        class Handler(logging.Handler):
            def emit(handler, record):
                self.texts.append(record.getMessage())

        self.texts = []
        self.logger = logging.getLogger("uvicorn.error")
        self.handler = Handler(logging.ERROR)
        self.logger.addHandler(self.handler)

    def close(self):
        self.logger.removeHandler(self.handler)

    def text(self):
        for text in reversed(self.texts):
            if "Traceback (most recent call last)" in text:
                return text
        return self.texts[-1] if self.texts else "application startup failed"


def http_protocol():
    """uvicorn's HTTP protocol class for the runners' connections other
    than the gateway's lane (see RunnerProtocol): httptools (a C parser,
    Debian's python3-httptools) when this Python has it, else h11 (pure
    Python). On a hello app under load, uvicorn answered 8,900 requests a
    second with httptools against 5,600 with h11: parsing each request's
    head in Python was a third of its work."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    return HttpToolsProtocol


def new_config(sock, app=None):
    """The uvicorn config serving app on sock. The runner's own is made
    before any app exists (app None): creating it sets up logging, which
    would otherwise cost the cold start about a millisecond; load_and_serve
    then gives it the wrapper the app will be put in. warm_up makes one for
    its throwaway app the same way."""
    import uvicorn

    config = uvicorn.Config(
        app,
        fd=sock.fileno(),
        log_level="warning",
        access_log=False,
        # with_request_id reads the gateway's X-Forwarded-* (see forwarded).
        proxy_headers=False,
        lifespan="auto",
        loop="asyncio",
        http=RunnerProtocol,
    )
    config.http_inner = http_protocol()
    return config


# The gateway's lane into a runner. A connection whose first byte is
# LANE_REQUEST carries the gateway's requests, one frame each: that byte,
# the length of the rest (4 bytes, big-endian), then the request exactly as
# the gateway would write it in HTTP/1.1 (its head, as the gateway parsed
# and normalised it, and the whole body, which the gateway has read). Each
# answer is LANE_ANSWER followed by the HTTP/1.1 response uvicorn would send.
# Any other first byte is HTTP from anyone else (nginx, a probe, a
# WebSocket upgrade, which the gateway sends as HTTP), served by uvicorn's
# own protocol. See GatewayLane.
LANE_REQUEST = 0x01
LANE_ANSWER = b"\x02"
LANE_HEAD = 5
# The patterns uvicorn checks an answer's header names and values against
# (as written there, in effect they refuse control characters in values),
# and its status lines.
HEADER_RE = re.compile(b'[\x00-\x1F\x7F()<>@,;:[]={} \t\\"]')
HEADER_VALUE_RE = re.compile(b"[\x00-\x1F\x7F]")
CLOSE_HEADER = (b"connection", b"close")


def status_line(code):
    try:
        phrase = http.HTTPStatus(code).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase)


STATUS_LINE = {code: status_line(code) for code in range(100, 600)}


class RunnerProtocol(asyncio.Protocol):
    """What a runner's listener makes of each connection: it looks at the
    first byte and hands the connection to GatewayLane or to uvicorn's HTTP
    protocol (see http_protocol). uvicorn takes it as its http class."""

    def __init__(self, config, server_state, _loop=None):
        self.config = config
        self.server_state = server_state
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if data[0] == LANE_REQUEST:
            proto = GatewayLane(self.config, self.server_state)
        else:
            proto = self.config.http_inner(config=self.config, server_state=self.server_state)
        proto.connection_made(self.transport)
        self.transport.set_protocol(proto)
        proto.data_received(data)

    def connection_lost(self, exc):
        pass


class GatewayLane(asyncio.Protocol):
    """Serves the gateway's requests (see LANE_REQUEST) to the app as
    uvicorn's httptools protocol does: the same scope, the same answer
    bytes, the same errors and logs. It does less because its one peer
    has done it: the gateway parsed the request from the client, checked
    it, and read its body; it never sends a request before the last one is
    answered, nor an upgrade; it closes idle connections itself. So a
    request is one split of its head, and an answer one write when its
    body follows its head at once, as with every response that is not
    streamed (uvicorn writes the head and the body apart). Under load, on
    the hello app, the app's Python spent about a tenth less per request
    than behind uvicorn's protocol (see the README, "The gateway's lane
    into runners")."""

    def __init__(self, config, server_state):
        self.config = config
        self.app = config.loaded_app
        self.root_path = config.root_path
        self.server_state = server_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.logger = logging.getLogger("uvicorn.error")
        self.loop = asyncio.get_running_loop()
        self.transport = None
        self.server = self.client = None
        self.buf = None  # a frame not yet whole
        self.cycle = None
        self.waiting = collections.deque()  # frames sent before an answer
        self.writable = None  # a future while the transport's buffer is full
        self.closing = False

    def connection_made(self, transport):
        from uvicorn.protocols.utils import get_local_addr, get_remote_addr

        self.connections.add(self)
        self.transport = transport
        self.server = get_local_addr(transport)
        self.client = get_remote_addr(transport)

    def connection_lost(self, exc):
        self.connections.discard(self)
        if self.cycle is not None:
            self.cycle.lost()
        self.resume_writing()
        if exc is None:
            self.transport.close()

    def eof_received(self):
        pass

    def pause_writing(self):
        if self.writable is None:
            self.writable = self.loop.create_future()

    def resume_writing(self):
        if self.writable is not None:
            if not self.writable.done():
                self.writable.set_result(None)
            self.writable = None

    def data_received(self, data):
        if self.buf is not None:
            self.buf += data
            end = frame_end(self.buf, 0)
            if end is None or len(self.buf) < end:
                return
            # The frames are read from the buffer itself: a large body is
            # copied once more, into the body the app gets.
            data, self.buf = self.buf, None
        pos = 0
        while pos < len(data) and not self.transport.is_closing():
            if data[pos] != LANE_REQUEST:
                self.logger.warning("Invalid frame from the gateway: first byte %d.", data[pos])
                self.transport.close()
                return
            end = frame_end(data, pos)
            if end is None or len(data) < end:
                self.buf = bytearray(data[pos:])
                return
            if self.cycle is None or self.cycle.complete:
                self.start(data, pos + LANE_HEAD, end)
            else:
                self.waiting.append(bytes(data[pos + LANE_HEAD : end]))
            pos = end

    def start(self, data, pos=0, end=None):
        """Starts serving the request in data[pos:end]."""
        try:
            scope, body = self.parse(data, pos, len(data) if end is None else end)
        except (ValueError, UnicodeDecodeError) as exc:
            # What uvicorn answers a request its parser refuses.
            self.logger.warning("Invalid HTTP request received.", exc_info=exc)
            self.refuse(b"Invalid HTTP request received.")
            return
        self.cycle = LaneCycle(self, scope, body)
        task = self.loop.create_task(self.cycle.run(self.app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def parse(self, data, pos, end):
        """The scope of the request in data[pos:end], as uvicorn makes it,
        and its body."""
        blank = data.find(b"\r\n\r\n", pos, end)
        if blank < 0:
            raise ValueError("no end of head")
        view = memoryview(data)
        lines = bytes(view[pos:blank]).split(b"\r\n")
        body = bytes(view[blank + 4 : end])
        method, target, version = lines[0].split(b" ", 2)
        headers = [(name.lower(), value.strip()) for name, _, value in (line.partition(b":") for line in lines[1:])]
        for name, value in headers:
            if name == b"transfer-encoding" and value.lower() == b"chunked":
                body = dechunk(body)
        raw_path, _, query = target.partition(b"#")[0].partition(b"?")
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope = {
            "type": "http",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.3"},
            "http_version": version[5:].decode("ascii"),
            "server": self.server,
            "client": self.client,
            "scheme": "http",
            "root_path": self.root_path,
            "headers": headers,
            "method": method.decode("ascii"),
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
        }
        return scope, body

    def answer_head(self, status):
        """The start of an answer's head: the lane's byte, the status line
        and the server's own headers (date, server), which need no
        checking."""
        content = [LANE_ANSWER, STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += (name, b": ", value, b"\r\n")
        return content

    def refuse(self, message):
        """Answers 400 with message and closes the connection."""
        content = self.answer_head(400)
        content += (
            b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(message),
            message,
        )
        self.transport.write(b"".join(content))
        self.transport.close()

    def answered(self):
        self.server_state.total_requests += 1
        if self.closing:
            self.transport.close()
        elif self.waiting:
            self.start(self.waiting.popleft())

    def shutdown(self):
        """uvicorn's server calls it to stop: an idle connection closes
        now, a busy one after its answer."""
        if self.cycle is None or self.cycle.complete:
            self.transport.close()
        else:
            self.closing = True


def frame_end(data, pos):
    """Where the lane frame that starts at data[pos] ends, or None while its
    own head (LANE_HEAD bytes) has not all come."""
    if len(data) - pos < LANE_HEAD:
        return None
    return pos + LANE_HEAD + int.from_bytes(data[pos + 1 : pos + LANE_HEAD], "big")


def dechunk(body):
    """The body of a chunked request (the gateway forwards a client's chunked
    body with trailers so); the trailers are dropped, as uvicorn does."""
    out = bytearray()
    pos = 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            return bytes(out)
        out += body[eol + 2 : eol + 2 + size]
        pos = eol + 4 + size


class LaneCycle:
    """One request on the gateway's lane and its answer: uvicorn's
    RequestResponseCycle (httptools_impl) for a request whose body is all
    there, with the head held back until the first piece of the body, or
    the end of the event loop's turn, so that both go out in one write."""

    __slots__ = ("lane", "scope", "body", "started", "complete", "disconnected", "close", "chunked",
                 "expected", "head", "event")

    def __init__(self, lane, scope, body):
        self.lane = lane
        self.scope = scope
        self.body = body
        self.started = self.complete = self.disconnected = self.close = False
        self.chunked = None
        self.expected = 0
        self.head = None  # the answer's head, until written
        self.event = None  # for a receive waiting for the end

    def lost(self):
        if not self.complete:
            self.disconnected = True
        if self.event is not None:
            self.event.set()

    async def run(self, app):
        logger = self.lane.logger
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.started:
                await self.send_500()
            else:
                self.abort()
        else:
            if result is not None:
                logger.error("ASGI callable should return None, but returned '%s'.", result)
                self.abort()
            elif not self.started and not self.disconnected:
                logger.error("ASGI callable returned without starting response.")
                await self.send_500()
            elif not self.complete and not self.disconnected:
                logger.error("ASGI callable returned without completing response.")
                self.abort()

    def abort(self):
        self.flush_head()
        self.lane.transport.close()

    async def send_500(self):
        await self.send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
            }
        )
        await self.send({"type": "http.response.body", "body": b"Internal Server Error"})

    def flush_head(self):
        if self.head is not None and not self.disconnected:
            self.lane.transport.write(self.head)
        self.head = None

    async def send(self, message):
        lane = self.lane
        if lane.writable is not None and not self.disconnected:
            await lane.writable
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{kind}'.")
            self.started = True
            status = message["status"]
            content = lane.answer_head(status)
            headers = message.get("headers", ())
            if CLOSE_HEADER in self.scope["headers"] and CLOSE_HEADER not in headers:
                headers = [*headers, CLOSE_HEADER]
            for name, value in headers:
                if HEADER_RE.search(name):
                    raise RuntimeError("Invalid HTTP header name.")
                if HEADER_VALUE_RE.search(value):
                    raise RuntimeError("Invalid HTTP header value.")
                name = name.lower()
                if name == b"content-length" and self.chunked is None:
                    self.expected = int(value.decode())
                    self.chunked = False
                elif name == b"transfer-encoding" and value.lower() == b"chunked":
                    self.expected = 0
                    self.chunked = True
                elif name == b"connection" and value.lower() == b"close":
                    self.close = True
                content += (name, b": ", value, b"\r\n")
            if self.chunked is None and self.scope["method"] != "HEAD" and status not in (204, 304):
                self.chunked = True
                content.append(b"transfer-encoding: chunked\r\n")
            content.append(b"\r\n")
            self.head = b"".join(content)
            lane.loop.call_soon(self.flush_head)
        elif not self.complete:
            if kind != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.scope["method"] == "HEAD":
                self.expected = 0
                body = b""
            elif self.chunked:
                body = b"".join((b"%x\r\n" % len(body), body, b"\r\n")) if body else b""
                if not more:
                    body += b"0\r\n\r\n"
            else:
                if len(body) > self.expected:
                    raise RuntimeError("Response content longer than Content-Length")
                self.expected -= len(body)
            if self.head is not None:
                body, self.head = self.head + body, None
            if body:
                lane.transport.write(body)
            if not more:
                if self.expected != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.complete = True
                if self.event is not None:
                    self.event.set()
                if self.close:
                    lane.transport.close()
                lane.answered()
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent, after response already completed.")

    async def receive(self):
        if self.body is not None and not self.disconnected and not self.complete:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        if not self.disconnected and not self.complete:
            if self.event is None:
                self.event = asyncio.Event()
            await self.event.wait()
        return {"type": "http.disconnect"}


async def read_command():
    """Waits, without blocking the already running event loop, for the load
    command; None if the agent closed fd 3 without sending a whole one."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(CMD_FD, lambda: readable.done() or readable.set_result(None))
    try:
        await readable
    finally:
        loop.remove_reader(CMD_FD)
    # The agent writes the whole line at once; reading blocks only if it
    # spans several pipe writes.
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(CMD_FD, 64 << 10)
        if not chunk:
            return None
        line += chunk
    return json.loads(line)


def watch_agent():
    """Ends this process when the agent dies: it holds fd 3 open until this
    process has exited, so EOF means nobody forwards the app's logs or will
    ever stop it. A runner forked from the zygote leads its own process
    group, and takes whatever the app started with it; in exec mode the
    kernel's parent-death signal has usually come first."""

    def readable():
        if os.read(CMD_FD, 4096):
            return  # the agent sends nothing after the load command
        if os.getpgid(0) == os.getpid():
            os.killpg(0, signal.SIGKILL)
        os._exit(1)

    asyncio.get_running_loop().add_reader(CMD_FD, readable)


APP_LIMITS = (
    ("memory", resource.RLIMIT_DATA),
    ("processes", resource.RLIMIT_NPROC),
    ("file_size", resource.RLIMIT_FSIZE),
)


def limit(limits):
    """Sets the load command's limits, soft and hard, so that the app cannot
    raise them again; a limit already lower stays."""
    for key, which in APP_LIMITS:
        n = limits.get(key) or 0
        if n > 0:
            _, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                n = min(n, hard)
            resource.setrlimit(which, (n, n))


# Landlock (linux/landlock.h): the syscalls, and the rights confine() keeps
# to the runner's own directory (changing files) or to it and the system's
# directories (reading and executing them).
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_FS_CHANGES = _FS_WRITE_FILE | sum(1 << bit for bit in range(4, 13))  # remove and make anything
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_PR_SET_NO_NEW_PRIVS = 38

# What a confined runner reads besides its own directory: the system's
# programs, libraries and configuration, and the kernel's views of itself;
# also Python's own directories (see readable_paths). Not /tmp, /dev/shm,
# /home, /root, /var or /opt: other users' and other programs' files.
SYSTEM_READ = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/proc", "/sys")
# Device files a confined runner reads (/dev/null it also writes).
DEVICES_READ = ("/dev/zero", "/dev/random", "/dev/urandom", "/dev/full")


def readable_paths(extra=()):
    """The directories and files a confined runner may read outside its own
    directory: SYSTEM_READ, DEVICES_READ, Python's prefixes and import path
    (an interpreter outside /usr, a container's /usr/local), the directory
    of /etc/resolv.conf's target (systemd-resolved keeps it in /run), and
    extra (the host's shared dependencies)."""
    paths = list(SYSTEM_READ) + list(DEVICES_READ)
    paths += [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    paths += [p for p in sys.path if os.path.isabs(p)]
    paths.append(os.path.dirname(os.path.realpath("/etc/resolv.conf")))
    paths += [p for p in extra if os.path.isabs(p)]
    return list(dict.fromkeys(paths))


def _syscall():
    """libc and its syscall function."""
    libc = ctypes.CDLL(None, use_errno=True)
    call = libc.syscall
    call.restype = ctypes.c_long
    return libc, call


def _landlock():
    """libc, its syscall function, and the kernel's Landlock ABI (0 where
    it has none)."""
    libc, call = _syscall()
    abi = call(ctypes.c_long(_LANDLOCK_CREATE_RULESET), None, ctypes.c_long(0),
               ctypes.c_long(_LANDLOCK_CREATE_RULESET_VERSION))
    return libc, call, max(abi, 0)


def _syscall_error(name):
    return OSError(ctypes.get_errno(), name + ": " + os.strerror(ctypes.get_errno()))


def _no_new_privs(libc):
    """Sets no new privileges, which Landlock and seccomp filters need
    unprivileged, and which keeps exec from granting any."""
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _syscall_error("prctl(PR_SET_NO_NEW_PRIVS)")


def confine(workdir, readable=()):
    """Keeps this process and what it starts from changing the file system
    outside workdir (its own directory, and HOME): no writing, making or
    removing anything in /tmp, /dev/shm or another user's world-writable
    place, whatever user it runs as; /dev/null stays writable. With
    readable (see readable_paths), it also reads and executes files only in
    workdir and in those: another user's world-readable files in /tmp or
    /home stay closed to it. Returns False where the kernel has no
    Landlock."""
    libc, call, abi = _landlock()
    if abi < 1:
        return False
    handled = _FS_CHANGES | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    if readable:
        handled |= _FS_READ
    # The rights that apply to a file, not a directory, of those handled.
    file_rights = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE
    rules = [(workdir, handled, True), (os.devnull, (_FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE) & handled, True)]
    rules += [(path, _FS_READ & handled, False) for path in readable]
    attr = ctypes.create_string_buffer(struct.pack("<Q", handled))
    ruleset = call(ctypes.c_long(_LANDLOCK_CREATE_RULESET), attr, ctypes.c_long(8), ctypes.c_long(0))
    if ruleset < 0:
        raise _syscall_error("landlock_create_ruleset")
    try:
        for path, rights, needed in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                if needed:
                    raise
                continue  # /lib32 on most machines, say: it stays closed
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    rights &= file_rights
                rule = ctypes.create_string_buffer(struct.pack("<Qi", rights, fd))
                if call(ctypes.c_long(_LANDLOCK_ADD_RULE), ctypes.c_long(ruleset),
                        ctypes.c_long(_LANDLOCK_RULE_PATH_BENEATH), rule, ctypes.c_long(0)) < 0:
                    raise _syscall_error(f"landlock_add_rule {path}")
            finally:
                os.close(fd)
        _no_new_privs(libc)
        if call(ctypes.c_long(_LANDLOCK_RESTRICT_SELF), ctypes.c_long(ruleset), ctypes.c_long(0)) < 0:
            raise _syscall_error("landlock_restrict_self")
    finally:
        os.close(ruleset)
    return True


_NET_BIND_TCP = 1 << 0  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


def confine_network():
    """Keeps this process and what it starts from listening on a TCP port
    of its own (its app is served on the listener bind made, and reached
    only through the gateway), from signalling processes outside its
    confinement (the agent, the platform, other apps), and from connecting
    to abstract Unix sockets made outside it. It connects anywhere as
    before. Each where the kernel's Landlock has it (ABI 4 and 6); returns
    the ABI, 0 without Landlock. Like confine, before any thread."""
    _, call, abi = _landlock()
    if abi < 4:
        return abi
    if abi >= 6:
        attr = struct.pack("<QQQ", 0, _NET_BIND_TCP, _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL)
    else:
        attr = struct.pack("<QQ", 0, _NET_BIND_TCP)
    buf = ctypes.create_string_buffer(attr)
    ruleset = call(ctypes.c_long(_LANDLOCK_CREATE_RULESET), buf, ctypes.c_long(len(attr)), ctypes.c_long(0))
    if ruleset < 0:
        raise _syscall_error("landlock_create_ruleset")
    try:
        # No rule: no TCP port may be bound. NO_NEW_PRIVS is set (confine).
        if call(ctypes.c_long(_LANDLOCK_RESTRICT_SELF), ctypes.c_long(ruleset), ctypes.c_long(0)) < 0:
            raise _syscall_error("landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def drop_capabilities():
    """Gives up every capability this process holds, for good: the
    ambient, inheritable, permitted and effective sets, and with no new
    privileges set, no program it runs gets any back (nor from a setuid
    bit); the bounding set goes too where this process may change it (it
    needs CAP_SETPCAP, which a container may not grant). A runner whose
    Python runs as root (the platform as root without runner users) then
    holds what root's files grant their owner and nothing more: no reading
    or signalling other processes' memory and environment, no loading
    kernel modules, no changing its user. Returns False when it had none
    to give up (any other user). Like confine, before any thread:
    capabilities are each thread's own."""
    with open("/proc/self/status") as f:
        held = dict(line.split(":", 1) for line in f if line.startswith("Cap"))
    if all(int(held.get(k, "0"), 16) == 0 for k in ("CapPrm", "CapEff", "CapAmb")):
        return False
    libc, _ = _syscall()
    _no_new_privs(libc)
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EPERM:
                break  # no CAP_SETPCAP: no new privileges holds exec to none
            raise _syscall_error(f"prctl(PR_CAPBSET_DROP, {cap})")
    if libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        raise _syscall_error("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    header = ctypes.create_string_buffer(struct.pack("<Ii", _LINUX_CAPABILITY_VERSION_3, 0))
    sets = ctypes.create_string_buffer(2 * 3 * 4)  # two of effective, permitted, inheritable: none
    if libc.capset(header, sets) != 0:
        raise _syscall_error("capset")
    return True


# seccomp (linux/seccomp.h, linux/filter.h, linux/audit.h): each
# architecture's audit value and the numbers of the system calls
# forbid_unix_sockets looks at: socket, io_uring_setup and seccomp.
_SECCOMP_ARCHES = {
    "x86_64": (0xC000003E, 41, 425, 317),
    "aarch64": (0xC00000B7, 198, 425, 277),
}
_SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC = 1, 1
_SECCOMP_RET_ALLOW, _SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_JGE_K, _BPF_RET_K = 0x20, 0x15, 0x35, 0x06
_X32_SYSCALL_BIT = 0x40000000


def forbid_unix_sockets():
    """Keeps this process, every thread of it and whatever it starts from
    making Unix sockets (socket(AF_UNIX), a PermissionError), with a
    seccomp filter no one can lift. A Unix socket is how a process reaches
    the local services Landlock does not cover: the zygote's (which forks
    processes outside any confinement), the platform's store and API in
    its data directory, other runners' sockets, the system's D-Bus. Their
    directories' permissions are what keeps apps out, and where apps share
    the platform's user they keep nothing out. Socket pairs
    (socketpair: asyncio's loops make them), TCP and UDP stay, and so do
    the listener and connections this process already has. io_uring,
    which makes sockets without the socket call, is refused outright, as
    is a system call of another architecture's numbering. Returns False on
    an architecture it does not know, or a kernel without seccomp filters.
    Also where the kernel has no Landlock: it sets no new privileges
    itself."""
    arch = _SECCOMP_ARCHES.get(os.uname().machine)
    if arch is None:
        return False
    libc, call = _syscall()
    _no_new_privs(libc)
    audit_arch, nr_socket, nr_io_uring_setup, nr_seccomp = arch
    deny = _SECCOMP_RET_ERRNO | errno.EPERM
    # (code, jump if true, jump if false, k), jumps counted from the next.
    program = [
        (_BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (_BPF_JEQ_K, 1, 0, audit_arch),
        (_BPF_RET_K, 0, 0, deny),
        (_BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (_BPF_JGE_K, 5, 0, _X32_SYSCALL_BIT),
        (_BPF_JEQ_K, 4, 0, nr_io_uring_setup),
        (_BPF_JEQ_K, 0, 2, nr_socket),
        (_BPF_LD_W_ABS, 0, 0, 16),  # the low half of args[0], the family (an int)
        (_BPF_JEQ_K, 1, 0, socket.AF_UNIX),
        (_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
        (_BPF_RET_K, 0, 0, deny),
    ]
    filters = ctypes.create_string_buffer(b"".join(struct.pack("<HBBI", *ins) for ins in program))
    prog = ctypes.create_string_buffer(struct.pack("<HxxxxxxQ", len(program), ctypes.addressof(filters)))
    if call(ctypes.c_long(nr_seccomp), ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
            ctypes.c_long(_SECCOMP_FILTER_FLAG_TSYNC), prog) != 0:
        if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL):
            return False  # a kernel without seccomp filters, as confine without Landlock
        raise _syscall_error("seccomp(SECCOMP_SET_MODE_FILTER)")
    return True


def private_tmp(workdir):
    """Points the app's temporary files (TMPDIR, tempfile) into workdir."""
    tmp = os.path.join(workdir, "tmp")
    os.makedirs(tmp, mode=0o700, exist_ok=True)
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = None  # computed again, from TMPDIR, at first use


def confine_runner():
    """With GOFASTAPI_CONFINE=1 (the agent's --confine), confines this
    runner to its directory, the current one (see confine; it reads also
    the system's and Python's directories, and those in
    GOFASTAPI_CONFINE_READ, separated by ":"), and points its temporary
    files there. It must run before the process starts a thread: Landlock
    holds for the thread that asks and the threads it starts later, not for
    threads already running. Returns None when not asked to, else whether
    the kernel has Landlock to confine with."""
    extra = os.environ.pop("GOFASTAPI_CONFINE_READ", "")
    if os.environ.pop("GOFASTAPI_CONFINE", "") != "1":
        return None
    workdir = os.getcwd()
    private_tmp(workdir)
    return confine(workdir, readable_paths(extra.split(":") if extra else ()))


def import_app(cmd):
    app_dir = cmd["dir"]
    module_name = cmd["module"]
    limit(cmd.get("limits") or {})
    os.chdir(app_dir)
    sys.path.insert(0, app_dir)
    sys.path.extend(cmd.get("paths") or [])
    os.environ.update(cmd.get("env") or {})
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        fail_with_exception(exc, app_dir)
    file = cmd.get("file") or module_name
    app = getattr(module, "app", None)
    if app is None:
        msg = f"{file} defines no variable named app"
        print(msg, file=sys.stderr)
        fail(msg)
    if not callable(app):
        msg = f"app in {file} is not an ASGI application (it is a {type(app).__name__})"
        print(msg, file=sys.stderr)
        fail(msg)
    return app


def with_request_id(slot):
    """Wraps the app in slot["app"] so the request's X-Request-Id is known
    to logging while the request is served. The app itself reads the header
    as usual. The app is looked up per call, so the server can be set up
    with the wrapper before the app is imported; with slot["ready"] (an
    asyncio.Event), a request or WebSocket waits for it first, so one
    accepted before the app was imported and started is held until then,
    and the first request's answer ends the start's priority
    (end_start_priority)."""

    async def asgi(scope, receive, send):
        ready = slot.get("ready")
        if ready is not None and not ready.is_set() and scope["type"] != "lifespan":
            await ready.wait()
        if scope["type"] != "lifespan":
            forwarded(scope)
        if ready is None or scope["type"] != "http" or slot.get("answered"):
            return await slot["app"](scope, receive, send)
        try:
            return await slot["app"](scope, receive, send)
        finally:
            slot["answered"] = True
            end_start_priority()

    return asgi


def forwarded(scope):
    """Takes what the gateway says of a request (HTTP or WebSocket) from the
    headers it sets: the client's address, from the last X-Forwarded-For
    entry (those before it are the client's own claim), and the scheme
    it used, from X-Forwarded-Proto; and makes its X-Request-Id known to
    logging.

    Only the gateway reaches a runner's listener (a Unix socket that only
    root and the runner's user may open; in a cluster, NetworkPolicy), so
    these headers are its word. uvicorn's own reading of them (its proxy
    headers) trusts a peer at 127.0.0.1 only, which neither a socket's peer
    nor a pod's gateway is, and takes a client's claim when the client
    itself is on loopback."""
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            host = value.decode("latin-1").rpartition(",")[2].strip()
            if host:
                scope["client"] = (host, 0)
        elif name == b"x-forwarded-proto":
            proto = value.decode("latin-1").strip().lower()
            if scope["type"] == "websocket":
                proto = {"https": "wss", "http": "ws"}.get(proto, proto)
            if proto:
                scope["scheme"] = proto
        elif name == b"x-request-id" and scope["type"] == "http":
            request_id.set(value.decode("latin-1"))


def end_start_priority():
    """Puts this process's threads back at normal priority once the first
    request has its answer, if the agent raised them for the start (its
    --start-priority): its guard would otherwise do it only at the end of
    its window. Threads started since run at normal priority already."""
    try:
        if os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK == os.SCHED_OTHER:
            return
        tids = os.listdir("/proc/self/task")
    except (AttributeError, OSError):
        return  # not Linux, or not raised
    for tid in tids:
        try:
            if os.sched_getscheduler(int(tid)) & ~os.SCHED_RESET_ON_FORK != os.SCHED_OTHER:
                # An unprivileged process keeps the reset-on-fork flag.
                os.sched_setscheduler(int(tid), os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
        except OSError:
            pass


def log_request_ids():
    """Gives every log record a request_id attribute (for apps' own log
    formats: %(request_id)s), and starts the server's error lines about a
    request, such as the traceback of an unhandled exception, with
    [request_id=ID]: that is how the platform finds the traceback of a 5xx."""
    make_record = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = make_record(*args, **kwargs)
        record.request_id = request_id.get()
        return record

    logging.setLogRecordFactory(factory)

    class Tag(logging.Filter):
        def filter(self, record):
            rid = getattr(record, "request_id", "")
            if rid and isinstance(record.msg, str) and not record.msg.startswith("[request_id="):
                record.msg = f"[request_id={rid}] {record.msg}"
            return True

    logging.getLogger("uvicorn.error").addFilter(Tag())


async def warm_up():
    """Takes a throwaway app through what importing a small app and serving
    its first requests run: creating FastAPI, declaring a route, starting
    uvicorn's server with its lifespan, and, over real connections, HTTP
    parsing (see http_protocol), the middleware stack, validating
    parameters, rendering JSON and answering a 404. In a runner forked from the zygote, this is when
    the memory pages those touch get copied (the first write to a page
    shared with the zygote, if only to a reference count, costs a page
    fault and a copy), so the cold start does not pay for them: measured on
    the bench app, going through the server rather than calling the app
    directly took 2-4 ms off the load and the first request. In exec mode
    it pays first-use costs the same way. It runs no user code, leaves no
    signal handler, socket or task behind, and a failure only costs the
    warmth."""
    import uvicorn

    sock = path = None
    try:
        from fastapi import FastAPI

        app = FastAPI()

        # Not async: FastAPI runs it in anyio's worker thread, whose start
        # is part of a plain def endpoint's first request.
        @app.get("/warm/{item}")
        def warm(item: int, q: str = ""):
            return {"item": item, "q": q}

        # A Unix socket in the runner's own directory, as the app's own
        # listener is on one machine; a confined runner binds no TCP port
        # (see confine_network).
        path = os.path.join(os.getcwd(), ".warm.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(8)
        config = new_config(sock, with_request_id({"app": app}))
        # What Server.serve does, less its signal handlers (SIGTERM must
        # still end this process at once until an app is loaded) and its
        # shutdown's pauses.
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup()
        await server.on_tick(0)
        # A route found, then one not (a browser's first visit asks for
        # /favicon.ico, which few apps define), on the gateway's lane
        # (see GatewayLane); then one in HTTP, as nginx or a WebSocket
        # upgrade would come.
        for target, lane in (("/warm/1?q=x", True), ("/favicon.ico", True), ("/warm/2", False)):
            reader, writer = await asyncio.open_unix_connection(path)
            # With the headers the gateway adds, which with_request_id acts
            # on.
            request = (
                f"GET {target} HTTP/1.1\r\nHost: warm.localhost\r\nX-Forwarded-For: 127.0.0.1\r\n"
                "X-Forwarded-Proto: http\r\nX-Forwarded-Host: warm.localhost\r\n"
                "X-Request-Id: 0000000000000000\r\nConnection: close\r\n\r\n".encode()
            )
            if lane:
                request = bytes([LANE_REQUEST]) + len(request).to_bytes(LANE_HEAD - 1, "big") + request
            writer.write(request)
            await writer.drain()
            await reader.read()
            writer.close()
            await writer.wait_closed()
        for srv in server.servers:
            srv.close()
            await srv.wait_closed()
        await server.lifespan.shutdown()
    except Exception:
        traceback.print_exc()
    finally:
        if sock is not None:
            sock.close()
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)


async def grow_heap():
    """Grows Python's heap by about 2 MB while the runner waits for an app,
    then frees all of it but one object in GROW_KEEP, which keeps the
    allocator's arenas, and so their pages, for the app. An app's import
    allocates tens of thousands of objects, and each page of fresh memory
    costs a fault when first written (about 4.5 us on this VM): the bench's
    10-route app took 400 of them and 1-2 ms of its import; with the heap
    grown first, 170. It starts once the runner has waited GROW_AFTER (one
    claimed as soon as it is warm, in a burst beyond the warm pool, does
    not wait for it), runs a step at a time, and stops where it is when the
    load command arrives (or the task is cancelled): a runner claimed
    meanwhile pays at most a step (under a millisecond), and what it has
    not freed by then stays allocated, which costs memory, never time."""
    await asyncio.sleep(GROW_AFTER)
    steps = []
    try:
        for _ in range(GROW_STEPS):
            if select.select([CMD_FD], [], [], 0)[0]:
                return
            steps.append(
                [{"k": i, "v": [i, i]} for i in range(GROW_OBJECTS)]
                + [bytearray(300) for _ in range(GROW_OBJECTS // 7)]
                + [str(i) * 3 for i in range(GROW_OBJECTS)]
            )
            await asyncio.sleep(0)
        while steps:
            if select.select([CMD_FD], [], [], 0)[0]:
                return
            _grown.extend(steps.pop()[::GROW_KEEP])
            await asyncio.sleep(0)
    finally:
        _grown.extend(steps)


async def load_and_serve(config, listening, confined):
    """Runs inside the event loop from the start, so loading an app does not
    pay for creating one. The app is imported inside the running loop, as
    uvicorn itself does when given "module:app". A confined runner makes
    no Unix socket once it is warm (see forbid_unix_sockets)."""
    import uvicorn

    await warm_up()
    if confined:
        forbid_unix_sockets()
    # Everything that does not need the app is made before it is asked for.
    log_request_ids()
    errors = StartupErrors()
    import_us = 0

    class Server(uvicorn.Server):
        def install_early_signal_handlers(self, slot):
            # What uvicorn's install_signal_handlers does, but not through
            # the event loop's add_signal_handler, whose check of the signal
            # number lists every valid signal as an enum each time (0.6 ms
            # for two signals), and before the app is asked for. Until the
            # app is imported a signal does what it did before (SIGTERM
            # ends a warm runner at once); from then on it is uvicorn's.
            # handle_exit only sets the flag that main_loop looks at every
            # tick, and the tick notices it as soon either way.
            def handler(prev):
                def handle(sig, frame):
                    if "app" in slot:
                        return self.handle_exit(sig, frame)
                    if prev == signal.SIG_DFL:
                        signal.signal(sig, signal.SIG_DFL)
                        os.kill(os.getpid(), sig)
                    elif callable(prev):
                        return prev(sig, frame)

                return handle

            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, handler(signal.getsignal(sig)))

        def install_signal_handlers(self):
            pass  # done before the load command (install_early_signal_handlers)

        async def startup(self, sockets=None):
            # uvicorn's startup, but the listener already serves (see
            # below): what it accepted waits for slot["ready"].
            await self.lifespan.startup()
            if self.lifespan.should_exit:
                self.should_exit = True
            else:
                self.servers = [listener]
                self.started = True
                slot["ready"].set()
                if _route_setup is not None:
                    slot["set_up_routes"] = asyncio.get_running_loop().create_task(set_up_routes())
            errors.close()
            gc.freeze()
            gc.enable()
            if not self.should_exit:
                emit(event="ready", import_us=import_us)

    # What serving needs besides the app is set up while the runner waits:
    # the config, loaded with the wrapper that will hold the app, the
    # signal handlers (0.15 and 0.25 ms of the load otherwise, the first
    # signal.signal of a forked process being slow), and the listener,
    # which accepts and parses from now on: a request sent ahead of the
    # load (the gateway writes one as soon as the pool picks this runner)
    # is read meanwhile and held by the wrapper until the app has started,
    # instead of being accepted, read and parsed after (0.2-1 ms of the
    # cold start, side by side).
    slot = {"ready": asyncio.Event()}
    config.app = with_request_id(slot)
    config.load()
    server = Server(config)
    server.install_early_signal_handlers(slot)
    listener = await asyncio.get_running_loop().create_server(
        functools.partial(config.http_protocol_class, config=config, server_state=server.server_state),
        # As uvicorn wraps a listening fd (see bind on TCP_NODELAY).
        sock=socket.fromfd(config.fd, socket.AF_UNIX, socket.SOCK_STREAM),
        backlog=config.backlog,
    )
    emit(event="listening", pid=os.getpid(), **listening)
    growing = asyncio.get_running_loop().create_task(grow_heap())
    cmd = await read_command()
    growing.cancel()
    if cmd is None:
        return  # the agent went away before loading anything
    watch_agent()
    if cmd.get("cmd") != "load":
        fail(f"unknown command {cmd.get('cmd')!r}")
    app_dir = cmd["dir"]
    # Importing an app allocates tens of thousands of objects, nearly all
    # of which live as long as the process: collecting while they are made
    # costs the cold start 10-15% and frees next to nothing. The collector
    # is back on once the app serves, with what the start made moved out
    # of its sight (as the zygote does with the framework), so later
    # collections do not walk it either.
    gc.disable()
    _lazy_routes.clear()  # the warm-up's
    started = time.perf_counter()
    slot["app"] = import_app(cmd)
    import_us = int((time.perf_counter() - started) * 1e6)

    try:
        await server.serve()
    except BaseException as exc:
        if not server.started:
            fail_with_exception(exc, app_dir)
        raise
    if not server.started:
        text = errors.text()
        fail(last_line(text), app_dir, text=text)


def serve_zygote(path):
    """Serves fork requests on a Unix SOCK_SEQPACKET socket at path, forever.
    Returns only in a forked child: the request it is to serve as a runner,
    and the four fds that came with it.

    Protocol, one connection per runner, all messages JSON:
    - The client (the runner's agent) sends one message,
      {"workdir": D, "env": {...}}, with FORK_FDS fds attached (SCM_RIGHTS):
      the runner's fd 3 (commands, read end), fd 4 (events, write end),
      stdout and stderr (write ends).
    - The zygote forks and answers {"pid": P}, or {"error": TEXT} and closes.
    - Once the child has exited the zygote reaps it and sends
      {"status": S}, S being the raw wait status, then closes. A client that
      hangs up first gets nothing; the child is reaped all the same.
    Only clients running as this process's user are served.
    """
    defaults = {sig: signal.getsignal(sig) for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM)}
    # SIGCHLD only wakes the loop (through the wakeup fd); children are reaped
    # in the loop, never in a handler, so no exit is missed or reported to the
    # wrong connection.
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(128)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    children = {}  # pid -> connection waiting for the child's exit status
    print(json.dumps({"event": "listening", "pid": os.getpid()}), flush=True)

    def forget(pid):
        conn = children.pop(pid, None)
        if conn is not None:
            sel.unregister(conn)
            conn.close()

    def reap():
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = children.get(pid)
            if conn is not None:
                try:
                    conn.send(json.dumps({"status": status}).encode())
                except OSError:
                    pass  # the client is gone
            forget(pid)

    while True:
        for key, _ in sel.select():
            if key.fileobj is wake_r:
                try:
                    while wake_r.recv(4096):
                        pass
                except BlockingIOError:
                    pass
                reap()
            elif key.fileobj is listener:
                forked = accept_fork(listener)
                if forked is None:
                    continue
                conn, pid, request, fds = forked
                if pid != 0:
                    children[pid] = conn
                    sel.register(conn, selectors.EVENT_READ, pid)
                    continue
                # The child: drop everything of the zygote, so that neither the
                # app nor a stray close can touch the zygote's sockets.
                signal.set_wakeup_fd(-1)
                for sig, handler in defaults.items():
                    signal.signal(sig, handler)
                sel.close()
                for sock in (listener, wake_r, wake_w, conn, *children.values()):
                    sock.close()
                return request, fds
            else:
                forget(key.data)  # the client hung up (or spoke out of turn)


def accept_fork(listener):
    """Accepts one fork request and forks. Returns None if there was none or
    it failed (the client got the error), else (conn, pid, request, fds):
    in the parent pid is the child's and the fds are already closed; in the
    child pid is 0."""
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return None
    except OSError:
        # Out of fds, most likely: the request stays queued and is tried
        # again; this process must not die of it.
        traceback.print_exc()
        return None
    fds = []
    try:
        conn.settimeout(FORK_REQUEST_TIMEOUT)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            raise PermissionError("client runs as another user")
        msg, fds, flags, _ = socket.recv_fds(conn, MAX_FORK_REQUEST, FORK_FDS + 1)
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != FORK_FDS:
            raise ValueError(f"a fork request is one message of at most {MAX_FORK_REQUEST} bytes with {FORK_FDS} fds")
        request = json.loads(msg)
        env = request.get("env")
        if not isinstance(request.get("workdir"), str) or not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ) or not all(isinstance(request.get(k, 1), int) and request.get(k, 1) > 0 for k in ("uid", "gid")):
            raise ValueError('a fork request is {"workdir": str, "env": {str: str}}, with optional positive int "uid" and "gid"')
        pid = os.fork()
    except Exception as exc:
        for fd in fds:
            os.close(fd)
        try:
            conn.send(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        except OSError:
            pass
        conn.close()
        return None
    if pid == 0:
        return conn, 0, request, fds
    # Closed before answering: once the client has the pid, only the child
    # holds the pipes' far ends, so EOF on them means the child is gone.
    for fd in fds:
        os.close(fd)
    try:
        conn.send(json.dumps({"pid": pid}).encode())
    except OSError:
        # The client is gone; the child ends at EOF on its fd 3 and is reaped.
        conn.close()
        return None
    return conn, pid, request, fds


def close_other_fds():
    """Closes every fd above the runner's own (0-4): in exec mode, what the
    agent inherited from whoever started it and did not mark close-on-exec;
    in a forked child, everything of the zygote."""
    os.closerange(EVENT_FD + 1, os.sysconf("SC_OPEN_MAX"))


def become_runner(request, fds):
    """Makes a freshly forked child what exec mode starts: its own process
    group, the agent's pipes as fds 1-4 and /dev/null as fd 0, no other fd,
    default signal handlers (restored by serve_zygote), the runner's
    directory and environment, and fresh random state; and, when the
    request names one, the unprivileged user it is to run as.

    A process group, not a session (setsid): signals for the zygote's group
    miss it all the same, and it stays in the platform's session, like an
    exec'd runner. With autogroup scheduling (Linux's default) every session
    is a CPU-share group of its own, so runners in sessions of their own
    would each get as much CPU as the whole platform when CPU is short."""
    os.setpgid(0, 0)
    # The user the agent asked for, before anything else: the app's code
    # must never run as the zygote's user (root, when the platform is).
    if "uid" in request:
        os.setgroups([])
        os.setgid(request["gid"])
        os.setuid(request["uid"])
    # Out of the way first: a received fd may itself be 3 or 4.
    cmd, events, out, err = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.dup2(cmd, CMD_FD, inheritable=False)
    os.dup2(events, EVENT_FD, inheritable=False)
    close_other_fds()
    for fd in range(EVENT_FD + 1):
        os.set_blocking(fd, True)
    os.chdir(request["workdir"])
    sys.argv[1:] = []  # as in exec mode: nothing of the zygote's command line
    os.environ.clear()
    os.environ.update(request["env"])
    # random reseeds itself after fork already (os.register_at_fork), and so
    # do OpenSSL's generator and tempfile's names; this makes it explicit.
    random.seed()


def main():
    global _events
    zygote = len(sys.argv) == 3 and sys.argv[1] == "--zygote"
    if zygote:
        preimport()
        become_runner(*serve_zygote(sys.argv[2]))
    else:
        close_other_fds()
    confined = confine_runner()
    drop_capabilities()
    os.set_inheritable(CMD_FD, False)
    os.set_inheritable(EVENT_FD, False)
    _events = os.fdopen(EVENT_FD, "w", encoding="utf-8")
    sock = bind()
    if confined:
        confine_network()
    if not zygote:
        preimport()
    config = new_config(sock)
    config.setup_event_loop()
    asyncio.run(load_and_serve(config, listening_event(sock), confined is not None))


if __name__ == "__main__":
    main()
