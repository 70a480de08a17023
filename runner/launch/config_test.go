package launch_test

import (
	"testing"
	"time"

	"github.com/gofastapi/gofastapi/runner/launch"
)

func TestConfigValidate(t *testing.T) {
	valid := launch.Config{
		Command:  []string{"/bin/gofastapi", "runner"},
		WorkDir:  "/dev/shm/runners/r1",
		RedisURL: "redis://runner:x@127.0.0.1:6379/0",
	}
	tests := []struct {
		name    string
		mutate  func(*launch.Config)
		wantErr bool
	}{
		{name: "valid", mutate: func(*launch.Config) {}},
		{name: "with env and timeout", mutate: func(c *launch.Config) { c.Env = []string{"A=b"}; c.ReadyTimeout = time.Second }},
		{name: "no command", mutate: func(c *launch.Config) { c.Command = nil }, wantErr: true},
		{name: "empty command", mutate: func(c *launch.Config) { c.Command = []string{""} }, wantErr: true},
		{name: "relative workdir", mutate: func(c *launch.Config) { c.WorkDir = "runners/r1" }, wantErr: true},
		{name: "root workdir", mutate: func(c *launch.Config) { c.WorkDir = "/" }, wantErr: true},
		{name: "no redis", mutate: func(c *launch.Config) { c.RedisURL = "" }, wantErr: true},
		{name: "negative timeout", mutate: func(c *launch.Config) { c.ReadyTimeout = -time.Second }, wantErr: true},
		{name: "bad env", mutate: func(c *launch.Config) { c.Env = []string{"NOEQUALS"} }, wantErr: true},
		{name: "with zygote", mutate: func(c *launch.Config) { c.Zygote = "/dev/shm/gofastapi-1-2/zygote-3/zygote.sock" }},
		{name: "relative zygote", mutate: func(c *launch.Config) { c.Zygote = "zygote.sock" }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.mutate(&c)
			if err := c.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}
