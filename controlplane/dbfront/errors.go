package dbfront

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// ErrNoAccount is what Accounts.Account returns for a username that has no
// database credentials.
var ErrNoAccount = errors.New("dbfront: no such account")

// MongoDB error codes the front answers with, as MongoDB itself uses them.
const (
	codeAuthenticationFailed = 18
	codeUnauthorized         = 13
	codeMaxTimeMSExpired     = 50
	codeCommandNotFound      = 59
	codeCursorNotFound       = 43
	codeBadValue             = 2
	codeHostUnreachable      = 6
	codeExceededConnLimit    = 9001 // SocketException: the client may retry later
	codeQuotaExceeded        = 12501
)

// cmdError is a command refused by the front; its message is what the
// client sees, so it says what was refused and why.
type cmdError struct {
	code int32
	name string
	msg  string
}

func (e *cmdError) Error() string { return e.msg }

func (e *cmdError) doc() bson.Raw {
	b, _ := bson.Marshal(bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: e.msg}, {Key: "code", Value: e.code}, {Key: "codeName", Value: e.name}})
	return b
}

func unauthorized(format string, args ...any) *cmdError {
	return &cmdError{code: codeUnauthorized, name: "Unauthorized", msg: fmt.Sprintf(format, args...)}
}
