// Package launch starts runner agents (package runner) and their zygotes as
// child processes and talks to them: the client side of a generic runner,
// used by the pool's local backend.
//
// Start runs the agent in its own process group with a parent-death signal,
// writes the Redis URL to its stdin (never argv or the environment) and
// returns once the agent's handshake arrived, that is once Python is ready
// with the framework imported. With Config.Zygote set, the agent has that
// Zygote fork its Python (milliseconds) instead of starting one (about half
// a second of CPU). StartZygote starts a zygote: one per local backend.
// Runner.Specialize calls the agent's RunnerService and returns its Connect
// errors unchanged, so callers can switch on connect.CodeOf. Every app log
// line the agent forwards reaches the Log function current at that moment
// (SetLog swaps it atomically).
//
// Invariants:
//   - Stop signals the agent's process group (agent, and in exec mode Python
//     and anything the app started; in zygote mode the agent stops Python's
//     own group), waits for the agent to exit and for Python to exit (killing
//     a forked Python whose agent was killed first) and removes WorkDir; it
//     is idempotent and safe to call concurrently.
//   - Done is closed only after the agent exited and all its output was read,
//     so ExitErr and the last log lines are final by then.
//   - The agent's environment is PATH plus Config.Env: nothing else of the
//     platform's environment leaks into a runner.
//   - A zygote's death does not end the runners it forked; Zygote.Stop does
//     not either.
//
// This package imports only proto/, runner and libraries.
package launch
