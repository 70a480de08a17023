package runner

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestLandlockABI: the platform's probe agrees with the one the runners'
// Python confines itself by (bootstrap.py's _landlock).
func TestLandlockABI(t *testing.T) {
	out, err := exec.Command("python3", "-I", "-c", `import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
print(max(libc.syscall(ctypes.c_long(444), None, ctypes.c_long(0), ctypes.c_long(1)), 0))`).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	want, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	if got := LandlockABI(); got != want {
		t.Errorf("LandlockABI() = %d; Python finds %d", got, want)
	}
}

// TestCanForbidUnixSockets: where the platform says runners forbid their
// apps Unix sockets, bootstrap.py's filter installs, and holds.
func TestCanForbidUnixSockets(t *testing.T) {
	if !CanForbidUnixSockets() {
		t.Skip("runners here go without the filter")
	}
	out, err := exec.Command("/usr/bin/python3", "-I", "-c", `import importlib.util, socket
spec = importlib.util.spec_from_file_location("bootstrap", "bootstrap.py")
bootstrap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bootstrap)
print(bootstrap.forbid_unix_sockets())
try:
    socket.socket(socket.AF_UNIX)
    print("made")
except PermissionError:
    print("refused")`).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "True\n") || !strings.Contains(string(out), "refused") {
		t.Errorf("forbid_unix_sockets in python3: %q, %v; want True, then refused", out, err)
	}
}
