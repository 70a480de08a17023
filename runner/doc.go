// Package runner is the generic runner's agent: the process the pool keeps
// warm, and which later serves exactly one app version.
//
// Main gets a Python bootstrap (bootstrap.py, embedded) running that binds
// the app's listener with the framework imported, writes one
// Handshake line to stdout, and serves RunnerService on its control
// listener. Specialize hard-links the version's files from the host's bundle
// cache (--bundle-cache; see bundlecache) into <workdir>/app when the cache
// holds them, or else fetches the bundle from Redis, verifies it against
// its content hash and writes it there; then it tells Python to import
// the entrypoint and serve its app, and answers once the app's startup
// (its lifespan) has completed and it serves.
//
// Python comes from one of two places:
//   - exec mode: the agent starts a fresh interpreter, which imports the
//     framework itself (about half a second of CPU);
//   - zygote mode (--zygote SOCKET): the agent sends its pipes to a zygote
//     (ZygoteCommand; one per local backend), a Python that imported the
//     framework once and only forks. The fork is ready in milliseconds.
//     The agent is not the child's parent: it signals it through a pidfd
//     (never a reused pid), learns of its exit from that pidfd and of its
//     exit status from the zygote, or, if the zygote died first, reports
//     "exit status unknown" with the app's last stderr line.
//
// The app listens on a Unix socket in the workdir with --app-socket (what
// the local pool's launcher asks for): only root and the runner's user may
// open it, since the workdir is theirs alone, so no other app on the
// machine reaches this one but through the gateway. In a pod it listens on
// TCP at --app-host, and NetworkPolicy keeps other runners off it. Either
// way the app takes the client's address and scheme from the gateway's
// X-Forwarded-For (its last entry) and X-Forwarded-Proto, since only the
// gateway reaches it (forwarded in bootstrap.py). Handshake.App and
// SpecializeResponse.app_addr say which (see appaddr). The listener serves
// two kinds of connection, told apart by their first byte: the gateway's
// lane (length-prefixed frames, one request each, served by GatewayLane
// in bootstrap.py with less work than HTTP) and HTTP/1.1 from anyone
// else, WebSocket upgrades included, served by uvicorn's own protocol.
//
// The zygote protocol is documented on serve_zygote in bootstrap.py: one
// SOCK_SEQPACKET connection per runner; the agent sends {"workdir", "env"}
// with Python's fds 3, 4, 1 and 2 attached (SCM_RIGHTS); the zygote answers
// {"pid"} (or {"error"}), and {"status"} once the child exited.
//
// Invariants:
//   - Specialize succeeds at most once; any second call fails with
//     FailedPrecondition, whatever became of the first. A runner that may
//     have run user code is never offered another app.
//   - Secrets arrive on stdin (Secrets) or in the Specialize request, never in
//     argv or the environment. The agent is not dumpable, and Python gets a
//     scrubbed environment: PATH, LANG, HOME and two PYTHON* switches, plus
//     the app's env once loaded. The zygote never sees either.
//   - Python holds fds 0-4 and nothing else the agent, its launcher or the
//     zygote had open; a forked Python shares no state with the zygote's
//     other children (own process group, own random state) except the memory
//     pages both only read, and the interpreter's string-hash seed.
//   - After the handshake, stdout carries only app log lines,
//     "<unix-nanos> <stream> <text>" (see ParseLogLine), at most MaxLogLine
//     bytes of text each. Agent diagnostics go to stderr.
//   - Python dies with the agent: in exec mode it lives in the agent's
//     process group and has a parent-death signal; in zygote mode it leads
//     its own process group, and kills it when fd 3 (held by the agent until
//     Python exited) reaches EOF. When Python exits by itself, Main returns
//     an error; on SIGTERM or when its context ends, Main stops Python
//     gracefully (SIGTERM to what the launcher or the agent signals, then
//     SIGKILL after a grace period) and returns nil.
//   - With --start-priority (20ms) and CAP_SYS_NICE, Python's threads, and
//     the agent's until it has answered Specialize, run under SCHED_FIFO from
//     the load command (raiseForStart); Python drops it after its first
//     answer, and a guard thread at a higher priority ends it at the end of
//     the window whatever the app does. Threads and processes Python starts
//     run at normal priority (SCHED_RESET_ON_FORK).
//   - Errors a Specialize caller sees are classified once (toConnect) and
//     name the app's file and line, never agent internals.
//
// The pool's local backend starts agents and zygotes through the client
// side, runner/launch; the binary's `gofastapi runner` subcommand calls
// Main. This package imports only proto/ and libraries, never other
// components.
package runner
