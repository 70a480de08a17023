package dbfront

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// remeasureEvery bounds how long a user's measured storage is trusted while
// writes stay well under the quota.
const remeasureEvery = 10 * time.Second

// usage is a user's storage as last measured plus what was written since.
// Measuring asks the store (dbStats of each database), so it happens when
// the estimate comes near the quota, after data was deleted, or when it is
// old; between measurements a write adds its size to the estimate.
type usage struct {
	mu       sync.Mutex // one measurement at a time per user
	measured int64
	pending  int64
	at       time.Time
	dirty    bool // set under Front.mu
}

// checkQuota refuses a write of size bytes that would take u past its
// quota.
func (f *Front) checkQuota(ctx context.Context, u *user, size int64) *cmdError {
	f.mu.Lock()
	quota, dirty := u.quota, u.usage.dirty
	dbs := make([]string, 0, len(u.dbs))
	for d := range u.dbs {
		dbs = append(dbs, d)
	}
	f.mu.Unlock()
	us := &u.usage
	us.mu.Lock()
	defer us.mu.Unlock()
	stale := dirty || time.Since(us.at) > remeasureEvery
	if stale || (quota > 0 && us.measured+us.pending+size > quota) {
		// The account is read again too: an admin may have changed the
		// quota since the connection authenticated.
		if a, err := f.cfg.Accounts.Account(ctx, u.name); err == nil && a.Password == u.password {
			quota, dbs = a.QuotaBytes, a.Databases
			f.mu.Lock()
			u.quota, u.dbs = a.QuotaBytes, dbSet(a.Databases)
			f.mu.Unlock()
		}
		f.mu.Lock()
		u.usage.dirty = false
		f.mu.Unlock()
		if quota <= 0 {
			us.at = time.Now()
			return nil
		}
		n, err := f.cfg.Sizer.Size(ctx, dbs)
		if err != nil {
			f.cfg.Logger.Warn("measure storage", "user", u.name, "err", err)
			return &cmdError{code: 1, name: "InternalError", msg: "could not measure your storage for the quota check; retry"}
		}
		us.measured, us.pending, us.at = n, 0, time.Now()
	}
	if quota > 0 && us.measured+size > quota {
		return &cmdError{code: codeQuotaExceeded, name: "QuotaExceeded", msg: fmt.Sprintf(
			"storage quota exceeded: your databases use %s of your %s quota and this write adds %s; delete data or drop collections to free space, or ask an admin for a larger quota",
			bytesText(us.measured), bytesText(quota), bytesText(size))}
	}
	return nil
}

// wrote adds a successful write to u's estimate.
func (u *user) wrote(size int64) {
	u.usage.mu.Lock()
	u.usage.pending += size
	u.usage.mu.Unlock()
}

// freed marks u's storage for measuring again before the next write.
func (f *Front) freed(u *user) {
	f.mu.Lock()
	u.usage.dirty = true
	f.mu.Unlock()
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
