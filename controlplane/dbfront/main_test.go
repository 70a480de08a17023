package dbfront

import "os"

func mkdirTemp() (string, error) { return os.MkdirTemp("", "dbfront-test-") }
