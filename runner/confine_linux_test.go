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
