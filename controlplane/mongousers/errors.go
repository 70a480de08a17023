package mongousers

import "errors"

// ErrAdminUser is what Refresh returns for an account that has the name of
// the control plane's own MongoDB user, which the sync never changes.
var ErrAdminUser = errors.New("mongousers: the account has the name of the control plane's own MongoDB user; it is not synced (rename one of them)")

// MongoDB error codes the sync acts on.
const (
	codeUserNotFound      = 11
	codeUserAlreadyExists = 51003
)
