package launch

// ControlAddr is the agent's control listener, for tests that call it
// other than through Runner.
func ControlAddr(r *Runner) string { return r.hs.Control }
