package store

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// platformID is the settings document of the platform-wide settings.
const platformID = "platform"

// Settings are the platform-wide settings an admin changes.
type Settings struct {
	// PublicSignups lets anyone sign up; when false only admins create
	// users.
	PublicSignups bool
	// AllowedImports is the admin's import allowlist; nil means the
	// built-in defaults are in force (the store does not know them).
	AllowedImports []string
	// AllowedPackages is the admin's dependency allowlist; nil means the
	// built-in defaults are in force.
	AllowedPackages []string
}

// settingsDoc is Settings as stored: the zero document means the defaults.
type settingsDoc struct {
	SignupsOff      bool     `bson:"signups_off"`
	ImportsCustom   bool     `bson:"imports_custom"`
	AllowedImports  []string `bson:"allowed_imports"`
	PackagesCustom  bool     `bson:"packages_custom"`
	AllowedPackages []string `bson:"allowed_packages"`
}

// Settings returns the platform settings; a platform nobody configured
// has public signups on and the default import allowlist.
func (s *Store) Settings(ctx context.Context) (*Settings, error) {
	var d settingsDoc
	err := s.settings.FindOne(ctx, bson.M{"_id": platformID}).Decode(&d)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, classify(err)
	}
	st := &Settings{PublicSignups: !d.SignupsOff}
	if d.ImportsCustom {
		st.AllowedImports = d.AllowedImports
		if st.AllowedImports == nil {
			st.AllowedImports = []string{}
		}
	}
	if d.PackagesCustom {
		st.AllowedPackages = d.AllowedPackages
		if st.AllowedPackages == nil {
			st.AllowedPackages = []string{}
		}
	}
	return st, nil
}

// SetPublicSignups turns public signups on or off.
func (s *Store) SetPublicSignups(ctx context.Context, on bool) error {
	return s.setSettings(ctx, bson.M{"$set": bson.M{"signups_off": !on}})
}

// SetAllowedImports replaces the import allowlist; nil goes back to the
// defaults.
func (s *Store) SetAllowedImports(ctx context.Context, modules []string) error {
	if modules == nil {
		return s.setSettings(ctx, bson.M{"$set": bson.M{"imports_custom": false}, "$unset": bson.M{"allowed_imports": ""}})
	}
	return s.setSettings(ctx, bson.M{"$set": bson.M{"imports_custom": true, "allowed_imports": modules}})
}

// SetAllowedPackages replaces the dependency allowlist; nil goes back to
// the defaults.
func (s *Store) SetAllowedPackages(ctx context.Context, packages []string) error {
	if packages == nil {
		return s.setSettings(ctx, bson.M{"$set": bson.M{"packages_custom": false}, "$unset": bson.M{"allowed_packages": ""}})
	}
	return s.setSettings(ctx, bson.M{"$set": bson.M{"packages_custom": true, "allowed_packages": packages}})
}

func (s *Store) setSettings(ctx context.Context, update bson.M) error {
	_, err := s.settings.UpdateOne(ctx, bson.M{"_id": platformID}, update, options.UpdateOne().SetUpsert(true))
	return classify(err)
}
