"""gofastapi runner bootstrap: the Python half of a generic runner.

The Go agent (runner/python.go) starts this file with a scrubbed environment
and two extra pipes: fd 3 carries commands from the agent, fd 4 carries events
to it, one JSON object per line. stdout and stderr belong to the app's logs.

1. Bind the app's listening socket on 127.0.0.1:0 and pre-import the
   framework, so that loading an app later costs only the app's own imports.
2. Report {"event": "listening", "port": P, "pid": PID}, start the asyncio
   event loop and, inside it, wait for exactly one
   {"cmd": "load", "dir": D, "module": M, "file": F, "env": {...}}.
3. Import M from D, take its `app`, serve it with uvicorn on the pre-bound
   socket and report {"event": "ready"} once uvicorn's startup completed.
   On failure print the traceback to stderr, report
   {"event": "error", "message": LAST_TRACEBACK_LINE, "file": F, "line": N}
   (file and line of the innermost frame inside D, if any) and exit 1.

Until the load command, SIGTERM ends the process at once. After it uvicorn
handles SIGTERM: it stops accepting, finishes in-flight requests and runs the
app's shutdown, then this process exits 0.
"""

import asyncio
import gc
import importlib
import json
import logging
import os
import re
import socket
import sys
import traceback

CMD_FD = 3
EVENT_FD = 4

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
    "uvicorn.protocols.websockets.wsproto_impl",
    "uvicorn.protocols.websockets.websockets_impl",
)

_events = None


def emit(**event):
    _events.write(json.dumps(event) + "\n")
    _events.flush()


def fail(message, app_dir=None, frames=(), text=""):
    """Report a failure to the agent and exit 1. The traceback, if any, was
    already printed to stderr so it reaches the app's logs."""
    file, line = innermost_app_frame(app_dir, frames, text)
    emit(event="error", message=message, file=file, line=line)
    sys.exit(1)


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


def prepare():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Accepted connections inherit TCP_NODELAY on Linux. uvicorn wraps the fd
    # as AF_UNIX, so asyncio would not set it and small responses could wait
    # for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
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
    # The framework's objects live as long as the process. Collect once now
    # and move the survivors out of the collector's sight: otherwise a full
    # collection (about 30 ms over them) can land in the middle of a cold start.
    gc.collect()
    gc.freeze()
    return sock


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


def new_config(sock):
    """The uvicorn config, made before any app exists: creating it sets up
    logging, which would otherwise cost the cold start about a millisecond.
    load() fills in the app."""
    import uvicorn

    return uvicorn.Config(
        None,
        fd=sock.fileno(),
        log_level="warning",
        access_log=False,
        lifespan="auto",
        loop="asyncio",
        http="h11",
    )


async def read_command():
    """Waits, without blocking the already running event loop, for the load
    command; None if the agent closed fd 3 without sending one."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(CMD_FD, readable.set_result, None)
    try:
        await readable
    finally:
        loop.remove_reader(CMD_FD)
    # The agent writes the whole line at once; readline blocks only if it
    # spans several pipe writes.
    with os.fdopen(CMD_FD, "r", encoding="utf-8") as cmds:
        line = cmds.readline()
    return json.loads(line) if line else None


def import_app(cmd):
    app_dir = cmd["dir"]
    module_name = cmd["module"]
    os.chdir(app_dir)
    sys.path.insert(0, app_dir)
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


async def load_and_serve(config):
    """Runs inside the event loop from the start, so loading an app does not
    pay for creating one. The app is imported inside the running loop, as
    uvicorn itself does when given "module:app"."""
    import uvicorn

    cmd = await read_command()
    if cmd is None:
        return  # the agent went away before loading anything
    if cmd.get("cmd") != "load":
        fail(f"unknown command {cmd.get('cmd')!r}")
    app_dir = cmd["dir"]
    config.app = import_app(cmd)

    errors = StartupErrors()

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            errors.close()
            if not self.should_exit:
                emit(event="ready")

    server = Server(config)
    try:
        await server.serve()
    except BaseException as exc:
        if not server.started:
            fail_with_exception(exc, app_dir)
        raise
    if not server.started:
        text = errors.text()
        fail(last_line(text), app_dir, text=text)


def main():
    global _events
    os.set_inheritable(CMD_FD, False)
    os.set_inheritable(EVENT_FD, False)
    _events = os.fdopen(EVENT_FD, "w", encoding="utf-8")
    sock = prepare()
    config = new_config(sock)
    config.setup_event_loop()
    emit(event="listening", port=sock.getsockname()[1], pid=os.getpid())
    asyncio.run(load_and_serve(config))


if __name__ == "__main__":
    main()
