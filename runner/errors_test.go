package runner

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"
)

func TestToConnect(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode connect.Code
		wantMsg  string
		wantLog  bool
	}{
		{name: "user error", err: failure(errBundleNotFound, "bundle %s not found", "abc"), wantCode: connect.CodeNotFound, wantMsg: "bundle abc not found"},
		{name: "wrapped user error", err: fmt.Errorf("ctx: %w", failure(errAppTimeout, "app did not answer within 10s")), wantCode: connect.CodeDeadlineExceeded, wantMsg: "app did not answer within 10s"},
		{name: "app failure", err: failure(errAppStart, "app failed to start: ZeroDivisionError: division by zero"), wantCode: connect.CodeFailedPrecondition, wantMsg: "app failed to start: ZeroDivisionError: division by zero"},
		{name: "claimed twice", err: failure(errAlreadySpecialized, "runner already specialized"), wantCode: connect.CodeAborted, wantMsg: "runner already specialized"},
		{name: "canceled", err: context.Canceled, wantCode: connect.CodeCanceled, wantMsg: "specialize canceled"},
		{name: "internal", err: errors.New("open /secret/path: permission denied"), wantCode: connect.CodeInternal, wantMsg: "internal error", wantLog: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logged := false
			err := toConnect(tt.err, func(string, ...any) { logged = true })
			var cerr *connect.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("toConnect returned %T, want *connect.Error", err)
			}
			if cerr.Code() != tt.wantCode || cerr.Message() != tt.wantMsg {
				t.Errorf("toConnect = %v %q, want %v %q", cerr.Code(), cerr.Message(), tt.wantCode, tt.wantMsg)
			}
			if logged != tt.wantLog {
				t.Errorf("logged = %v, want %v", logged, tt.wantLog)
			}
		})
	}
}
