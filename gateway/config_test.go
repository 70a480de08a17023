package gateway

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{
		Domain:             testDomain,
		API:                func() (net.Conn, error) { return nil, io.EOF },
		Routes:             &mapRoutes{},
		Pool:               &fakePool{},
		MaxRequestBodySize: 1 << 20,
		ReadTimeout:        time.Second,
		WriteTimeout:       time.Second,
		IdleTimeout:        time.Second,
		UpstreamTimeout:    time.Second,
		ColdStartTimeout:   time.Second,
		Concurrency:        1,
		Logger:             slog.New(slog.DiscardHandler),
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no env is fine", func(c *Config) { c.Env = nil }, ""},
		{"domain empty", func(c *Config) { c.Domain = "" }, "Domain"},
		{"domain with port", func(c *Config) { c.Domain = "example.test:80" }, "Domain"},
		{"domain with scheme", func(c *Config) { c.Domain = "https://example.test" }, "Domain"},
		{"domain trailing dot", func(c *Config) { c.Domain = "example.test." }, "Domain"},
		{"api", func(c *Config) { c.API = nil }, "API"},
		{"routes", func(c *Config) { c.Routes = nil }, "Routes"},
		{"pool", func(c *Config) { c.Pool = nil }, "Pool"},
		{"body size", func(c *Config) { c.MaxRequestBodySize = 0 }, "MaxRequestBodySize"},
		{"read timeout", func(c *Config) { c.ReadTimeout = 0 }, "ReadTimeout"},
		{"write timeout", func(c *Config) { c.WriteTimeout = -1 }, "WriteTimeout"},
		{"idle timeout", func(c *Config) { c.IdleTimeout = 0 }, "IdleTimeout"},
		{"upstream timeout", func(c *Config) { c.UpstreamTimeout = 0 }, "UpstreamTimeout"},
		{"cold start timeout", func(c *Config) { c.ColdStartTimeout = 0 }, "ColdStartTimeout"},
		{"concurrency", func(c *Config) { c.Concurrency = 0 }, "Concurrency"},
		{"no per-IP cap is fine", func(c *Config) { c.MaxConnsPerIP = 0 }, ""},
		{"per-IP cap", func(c *Config) { c.MaxConnsPerIP = -1 }, "MaxConnsPerIP"},
		{"owner sync interval", func(c *Config) { c.OwnerSync = -time.Second }, "OwnerSync"},
		{"logger", func(c *Config) { c.Logger = nil }, "Logger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Validate() = %v, want an ErrInvalidConfig naming %s", err, tt.field)
			}
			if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New() error = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestConfigValidateReportsEveryField(t *testing.T) {
	err := Config{}.Validate()
	for _, field := range []string{"Domain", "API", "Routes", "Pool", "MaxRequestBodySize", "ReadTimeout",
		"WriteTimeout", "IdleTimeout", "UpstreamTimeout", "ColdStartTimeout", "Concurrency", "Logger"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate() = %v, does not name %s", err, field)
		}
	}
}
