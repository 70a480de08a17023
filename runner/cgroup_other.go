//go:build !linux

package runner

import "errors"

type appGroup struct{}

var errNoCgroups = errors.New("control groups are Linux only")

func newAppGroup(string, float64, AppLimits) (*appGroup, error) { return nil, errNoCgroups }
func (g *appGroup) add(int) error                               { return nil }
func (g *appGroup) remove()                                     {}
func (g *appGroup) memoryKilled() (int64, bool)                 { return 0, false }

// CanGroupApps says that control groups are Linux only.
func CanGroupApps() error { return errNoCgroups }

// RemoveStaleAppGroups does nothing: control groups are Linux only.
func RemoveStaleAppGroups() {}

// RemoveAppGroup does nothing: control groups are Linux only.
func RemoveAppGroup(int) {}
