package store

import "sort"

// Limits caps what one user may have; a zero number means no limit.
type Limits struct {
	// Tier names where the numbers came from: a tier name, or "custom".
	Tier         string `bson:"tier"`
	Apps         int    `bson:"apps"`
	Databases    int    `bson:"databases"`
	StorageBytes int64  `bson:"storage_bytes"`
	// RequestsPerMinute caps the requests all the user's apps get
	// together, at each gateway.
	RequestsPerMinute int `bson:"requests_per_minute"`
}

// Tier names.
const (
	TierFree      = "free"
	TierPro       = "pro"
	TierUnlimited = "unlimited"
	TierCustom    = "custom"
	// DefaultTier applies to users no admin has given limits.
	DefaultTier = TierFree
)

var tiers = map[string]Limits{
	TierFree:      {Tier: TierFree, Apps: 10, Databases: 10, StorageBytes: 100 << 20, RequestsPerMinute: 3000},
	TierPro:       {Tier: TierPro, Apps: 100, Databases: 10, StorageBytes: 10 << 30, RequestsPerMinute: 60000},
	TierUnlimited: {Tier: TierUnlimited},
}

// TierLimits returns the limits of the named tier.
func TierLimits(name string) (Limits, bool) {
	l, ok := tiers[name]
	return l, ok
}

// TierNames returns the tier names, sorted.
func TierNames() []string {
	names := make([]string, 0, len(tiers))
	for n := range tiers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// EffectiveLimits returns the limits that apply to u: those of their tier
// as the platform defines it now, or the numbers an admin set (custom),
// else the default tier's.
func (u *User) EffectiveLimits() Limits {
	if u.Limits == nil {
		return tiers[DefaultTier]
	}
	if t, ok := tiers[u.Limits.Tier]; ok {
		return t
	}
	return *u.Limits
}

// AppLimit returns how many apps u may have, 0 meaning no limit. Admins
// are not limited: they could raise their own limit anyway.
func (u *User) AppLimit() int {
	if u.Admin {
		return 0
	}
	return u.EffectiveLimits().Apps
}

// RequestLimit returns how many requests a minute u's apps may get
// together at each gateway, 0 meaning no limit. Admins are not limited,
// as with apps.
func (u *User) RequestLimit() int {
	if u.Admin {
		return 0
	}
	return u.EffectiveLimits().RequestsPerMinute
}
