package mongousers

// MongoDB error codes the sync acts on.
const (
	codeUserNotFound      = 11
	codeUserAlreadyExists = 51003
)
