package launch

// ControlAddr is the agent's control listener, for tests that call it
// other than through Runner.
func ControlAddr(r *Runner) string { return r.hs.Control }

// AgentPid is the agent's process id, which names its app's control group.
func AgentPid(r *Runner) int { return r.cmd.Process.Pid }
