package apps

import (
	"fmt"
	"regexp"
	"strings"
)

var slugRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

// reserved names would collide with the platform's own hosts.
var reserved = map[string]bool{"www": true, "api": true, "admin": true, "app": true, "apps": true,
	"mail": true, "static": true, "docs": true, "dashboard": true, "platform": true, "gofastapi": true}

// checkName returns why name cannot be an app's name, or "".
func checkName(name string) string {
	switch {
	case !slugRE.MatchString(name):
		return fmt.Sprintf("app name %q must be 1-40 characters of a-z, 0-9 and -, not starting or ending with -: it becomes the URL's first label", name)
	case reserved[name] || strings.HasPrefix(name, "mongo-"):
		return fmt.Sprintf("app name %q is reserved by the platform: choose another", name)
	}
	return ""
}
