package runner

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// growCheck loads the bootstrap as a module into a Python that has imported
// the framework, as a runner's has, and forks a child per case, so that
// every case starts from the same memory: the child runs grow_heap (or not)
// with the load command already waiting on fd 3 (or not), then allocates
// about 1 MB of small objects, as an app's import does, and reports the
// page faults that took and what grow_heap kept.
const growCheck = `import asyncio, gc, importlib.util, json, os, resource, sys
spec = importlib.util.spec_from_file_location("bootstrap", sys.argv[1])
bootstrap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bootstrap)
import fastapi
gc.collect()
gc.freeze()

def case(grow, claimed):
    r, w = os.pipe()
    os.dup2(r, bootstrap.CMD_FD)
    if claimed:
        os.write(w, b"{}\n")
    if grow:
        asyncio.new_event_loop().run_until_complete(bootstrap.grow_heap())
    gc.disable()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    app = [{"k": i, "v": [i, i]} for i in range(4000)]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return {"faults": faults, "kept": len(bootstrap._grown)}

out = {}
for name, grow, claimed in (("plain", False, False), ("grown", True, False), ("claimed", True, True)):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, json.dumps(case(grow, claimed)).encode())
        os._exit(0)
    os.close(w)
    out[name] = json.loads(os.read(r, 4096))
    os.waitpid(pid, 0)
print(json.dumps(out))
`

// runBootstrapCheck runs script in the runners' Python (as a runner does:
// isolated, no bytecode files) with the bootstrap and files (name, content
// pairs) written into a scratch directory, their paths as its arguments,
// the bootstrap's first; it returns what script printed on stdout.
func runBootstrapCheck(t *testing.T, script string, files ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-I", "-B", "-c", script}
	write := func(name string, data []byte) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, path)
	}
	write("bootstrap.py", bootstrapSource)
	for i := 0; i+1 < len(files); i += 2 {
		write(files[i], []byte(files[i+1]))
	}
	out, err := exec.Command("/usr/bin/python3", args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("python: %v\n%s%s", err, out, stderr)
	}
	return out
}

func TestWaitingRunnerGrowsItsHeap(t *testing.T) {
	out := runBootstrapCheck(t, growCheck)
	type result struct{ Faults, Kept int }
	var got struct{ Plain, Grown, Claimed result }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	t.Logf("page faults allocating 1 MB: %d plain, %d after grow_heap, %d when claimed before it began", got.Plain.Faults, got.Grown.Faults, got.Claimed.Faults)
	// About 250 pages of fresh memory without the grown heap; the grown
	// heap holds them already.
	if got.Grown.Faults*2 > got.Plain.Faults {
		t.Errorf("allocating after grow_heap took %d page faults, plain %d: want under half", got.Grown.Faults, got.Plain.Faults)
	}
	if got.Grown.Kept == 0 {
		t.Error("grow_heap kept nothing: its arenas were given back")
	}
	// A runner whose load command is waiting grows nothing.
	if got.Claimed.Kept != 0 {
		t.Errorf("grow_heap with the load command waiting kept %d objects, want 0", got.Claimed.Kept)
	}
}
