package observe

import (
	"strings"

	"github.com/gofastapi/gofastapi/controlplane/logstore"
)

// maxTraceback bounds the lines returned for one traceback.
const maxTraceback = 200

// traceback returns the lines of the traceback the app logged for request
// id, or nil. The runner tags the error line that the server logs for an
// unhandled exception with "[request_id=ID]"; the traceback follows it on
// stderr and ends with the exception's own line, the first unindented
// line after a "Traceback" header that is not the header of a chained
// exception.
func traceback(lines []logstore.Line, id string) []string {
	tag := "[request_id=" + id + "]"
	start := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i].Text, tag) {
			start = i
			break
		}
	}
	if start < 0 {
		return nil
	}
	var stderr []string
	for _, l := range lines[start+1:] {
		if l.Stream == "stderr" {
			stderr = append(stderr, l.Text)
		}
	}
	out := []string{lines[start].Text}
	inTrace := false
	for i, t := range stderr {
		out = append(out, t)
		if len(out) == maxTraceback {
			break
		}
		switch {
		case strings.HasPrefix(t, "Traceback (most recent call last)"), strings.Contains(t, "Exception Group Traceback"):
			inTrace = true
		case t == "", strings.HasPrefix(t, " "), strings.HasPrefix(t, "\t"), isChain(t):
		case inTrace:
			// The exception line, unless a chained exception follows.
			if i+2 < len(stderr) && (isChain(stderr[i+1]) || isChain(stderr[i+2])) {
				inTrace = false
				continue
			}
			return out
		}
	}
	return out
}

// isChain reports whether t introduces the next exception of a chain.
func isChain(t string) bool {
	return strings.HasPrefix(t, "During handling of the above exception") ||
		strings.HasPrefix(t, "The above exception was the direct cause")
}
