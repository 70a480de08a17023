// Package runner is the generic runner's agent: the process the pool keeps
// warm, and which later serves exactly one app version.
//
// Main starts a Python bootstrap (bootstrap.py, embedded) that binds the app's
// listener on 127.0.0.1 and pre-imports FastAPI and uvicorn, writes one
// Handshake line to stdout, and serves RunnerService on its control listener.
// Specialize fetches the bundle from Redis, verifies it against its content
// hash, writes it under <workdir>/app, tells Python to import the entrypoint
// and serve its app, and answers once the app has answered one real HTTP
// request.
//
// Invariants:
//   - Specialize succeeds at most once; any second call fails with
//     FailedPrecondition, whatever became of the first. A runner that may
//     have run user code is never offered another app.
//   - Secrets arrive on stdin (Secrets) or in the Specialize request, never in
//     argv or the environment. The agent is not dumpable, and Python gets a
//     scrubbed environment: PATH, LANG, HOME and two PYTHON* switches, plus
//     the app's env once loaded.
//   - After the handshake, stdout carries only app log lines,
//     "<unix-nanos> <stream> <text>" (see ParseLogLine), at most MaxLogLine
//     bytes of text each. Agent diagnostics go to stderr.
//   - Python lives in the agent's process group and dies with the agent. When
//     Python exits by itself, Main returns an error; on SIGTERM or when its
//     context ends, Main stops Python gracefully and returns nil.
//   - Errors a Specialize caller sees are classified once (toConnect) and
//     name the app's file and line, never agent internals.
//
// The pool's local backend starts agents through the client side,
// runner/launch; the binary's `gofastapi runner` subcommand calls Main. This
// package imports only proto/ and libraries, never other components.
package runner
