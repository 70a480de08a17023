package runner

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// appGroup is the control group of one runner's app (cgroup v1: a group
// in each of the memory and pids hierarchies, and cpu with a CPU bound),
// which bounds the app's processes together, as rlimits, which are each
// process's, cannot: an app that forks shares one memory bound and one
// process count (and CPU bound) among all it started.
//
// The CPU bound is off by default: on this platform's 2-core bench
// machine, putting the app in a cpu group of its own, even without a
// quota, cost 15-20% of its throughput behind the gateway (6,400-7,000
// req/s against 8,000-8,150 in make bench's throughput rounds), and the
// gateway's CPU per request rose by a quarter; the memory and pids groups
// cost nothing measurable.
type appGroup struct {
	dirs   []string
	memory int64 // its memory limit in bytes; 0: none
}

// cgroupRoot is where the hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// errNoCgroups says this machine has no cgroup v1 hierarchies we can use.
var errNoCgroups = errors.New("no writable cgroup v1 memory and pids hierarchies")

// newAppGroup makes the group name, beside this process's own in each
// hierarchy, with the limits: limits.Memory bytes of memory,
// limits.Processes processes and threads, and cpu cores (0: no cpu group).
// It needs root.
func newAppGroup(name string, cpu float64, limits AppLimits) (*appGroup, error) {
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	// Per controller, its files to write: a group in each, even with no
	// limit of its own, so that all of them hold the same processes.
	settings := map[string][][2]string{"memory": nil, "pids": nil}
	if limits.Memory > 0 {
		settings["memory"] = [][2]string{{"memory.limit_in_bytes", strconv.FormatInt(limits.Memory, 10)}}
	}
	if limits.Processes > 0 {
		settings["pids"] = [][2]string{{"pids.max", strconv.FormatInt(limits.Processes, 10)}}
	}
	if cpu > 0 {
		const period = 100_000 // us, the kernel's default
		settings["cpu"] = [][2]string{
			{"cpu.cfs_period_us", strconv.Itoa(period)},
			{"cpu.cfs_quota_us", strconv.Itoa(max(int(cpu*period), 1000))},
		}
	}
	g := &appGroup{memory: limits.Memory}
	for _, controller := range []string{"memory", "pids", "cpu"} {
		if _, ok := settings[controller]; !ok {
			continue
		}
		parent, ok := own[controller]
		if !ok {
			g.remove()
			return nil, errNoCgroups
		}
		dir := filepath.Join(cgroupRoot, controller, parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			g.remove()
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
				return nil, fmt.Errorf("%w: %w", errNoCgroups, err)
			}
			return nil, fmt.Errorf("make the app's %s cgroup: %w", controller, err)
		}
		g.dirs = append(g.dirs, dir)
		for _, kv := range settings[controller] {
			if err := os.WriteFile(filepath.Join(dir, kv[0]), []byte(kv[1]), 0); err != nil {
				g.remove()
				return nil, fmt.Errorf("set the app's %s to %s: %w", kv[0], kv[1], err)
			}
		}
	}
	return g, nil
}

// ownCgroups maps each v1 controller of this process to its group's path,
// from /proc/self/cgroup ("ID:controllers:path" lines).
func ownCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoCgroups, err)
	}
	defer f.Close()
	own := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "cpu" || c == "memory" || c == "pids" {
				// A controller co-mounted with another (cpu,cpuacct)
				// is not where newAppGroup looks for it.
				if _, err := os.Stat(filepath.Join(cgroupRoot, c, "cgroup.procs")); err == nil {
					own[c] = parts[2]
				}
			}
		}
	}
	return own, sc.Err()
}

// CanGroupApps reports why agents could not put apps' processes in control
// groups of their own on this machine, if they could not: it makes one and
// removes it again. It needs root.
func CanGroupApps() error {
	g, err := newAppGroup("gofastapi-probe-"+strconv.Itoa(os.Getpid()), 0, AppLimits{})
	if err != nil {
		return err
	}
	g.remove()
	return nil
}

// add moves the process pid into the group; its children follow it. A
// nil group does nothing.
func (g *appGroup) add(pid int) error {
	if g == nil {
		return nil
	}
	for _, dir := range g.dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("move the app's process %d into %s: %w", pid, dir, err)
		}
	}
	return nil
}

// memoryKilled reports whether the kernel killed any of the group's
// processes for going over its memory limit together, and that limit;
// false for a nil group or where it cannot tell.
func (g *appGroup) memoryKilled() (limit int64, killed bool) {
	if g == nil || g.memory <= 0 {
		return 0, false
	}
	for _, dir := range g.dirs {
		b, err := os.ReadFile(filepath.Join(dir, "memory.oom_control"))
		if err != nil {
			continue // not the memory group's directory
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
				n, _ := strconv.Atoi(v)
				return g.memory, n > 0
			}
		}
	}
	return 0, false
}

// remove deletes the group, once the processes in it are gone: a process
// killed a moment ago may still be leaving it, so an empty-but-busy group
// is tried again for a short while.
func (g *appGroup) remove() {
	if g == nil {
		return
	}
	for _, dir := range g.dirs {
		removeCgroup(dir)
	}
}

func removeCgroup(dir string) {
	for range 100 {
		if err := syscall.Rmdir(dir); !errors.Is(err, syscall.EBUSY) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RemoveAppGroup deletes the app group of the agent with process id pid,
// if it left one: what the launcher calls for an agent that was killed.
func RemoveAppGroup(pid int) {
	own, err := ownCgroups()
	if err != nil {
		return
	}
	for controller, parent := range own {
		removeCgroup(filepath.Join(cgroupRoot, controller, parent, appGroupName(pid)))
	}
}

// RemoveStaleAppGroups deletes the app groups of agents that are gone
// without having deleted them (killed, with the platform that started
// them), once the processes in them have ended.
func RemoveStaleAppGroups() {
	own, err := ownCgroups()
	if err != nil {
		return
	}
	for controller, parent := range own {
		groups, _ := filepath.Glob(filepath.Join(cgroupRoot, controller, parent, appGroupPrefix+"*"))
		for _, dir := range groups {
			pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), appGroupPrefix))
			if err == nil && pid > 0 && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
				_ = syscall.Rmdir(dir)
			}
		}
	}
}
