package store

import (
	"context"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// domain is an app's custom domain; the host is the document's id, so one
// domain serves one app.
type domain struct {
	Host      string    `bson:"_id"`
	AppID     string    `bson:"app_id"`
	OwnerID   string    `bson:"owner_id"`
	CreatedAt time.Time `bson:"created_at"`
	// Misses counts the re-checks in a row that found the domain's CNAME
	// record no longer pointing at its app (see apps.RecheckDomains).
	Misses int `bson:"misses,omitempty"`
}

// Domain is a custom domain as its re-check sees it.
type Domain struct {
	Host  string
	AppID string
}

func (s *Store) domains() *mongo.Collection { return s.db.Collection("domains") }

// AddDomain records host as a custom domain of app appID, owned by
// ownerID. A host another app has gives ErrDuplicate; adding one the app
// has already is no error.
func (s *Store) AddDomain(ctx context.Context, host, appID, ownerID string) error {
	_, err := s.domains().InsertOne(ctx, domain{Host: host, AppID: appID, OwnerID: ownerID, CreatedAt: now()})
	if mongo.IsDuplicateKeyError(err) {
		if cur, err := s.DomainApp(ctx, host); err == nil && cur == appID {
			return nil
		}
		return ErrDuplicate
	}
	return classify(err)
}

// RemoveDomain removes host from app appID's domains; ErrNotFound if the
// app has no such domain.
func (s *Store) RemoveDomain(ctx context.Context, host, appID string) error {
	res, err := s.domains().DeleteOne(ctx, bson.M{"_id": host, "app_id": appID})
	if err != nil {
		return classify(err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// AppDomains returns app appID's custom domains, sorted.
func (s *Store) AppDomains(ctx context.Context, appID string) ([]string, error) {
	return s.domainHosts(ctx, bson.M{"app_id": appID})
}

// AppDomainsFailing returns those of app appID's custom domains whose
// last re-check missed (see SetDomainMisses), sorted.
func (s *Store) AppDomainsFailing(ctx context.Context, appID string) ([]string, error) {
	return s.domainHosts(ctx, bson.M{"app_id": appID, "misses": bson.M{"$gt": 0}})
}

// domainHosts returns the hosts of the domains filter matches, sorted.
func (s *Store) domainHosts(ctx context.Context, filter bson.M) ([]string, error) {
	cur, err := s.domains().Find(ctx, filter)
	if err != nil {
		return nil, classify(err)
	}
	var ds []domain
	if err := cur.All(ctx, &ds); err != nil {
		return nil, classify(err)
	}
	hosts := make([]string, len(ds))
	for i, d := range ds {
		hosts[i] = d.Host
	}
	slices.Sort(hosts)
	return hosts, nil
}

// DomainApp returns the id of the app served at host; ErrNotFound if none.
func (s *Store) DomainApp(ctx context.Context, host string) (string, error) {
	var d domain
	if err := s.domains().FindOne(ctx, bson.M{"_id": host}).Decode(&d); err != nil {
		return "", classify(err)
	}
	return d.AppID, nil
}

// Domains returns every custom domain, by host.
func (s *Store) Domains(ctx context.Context) ([]Domain, error) {
	cur, err := s.domains().Find(ctx, bson.M{}, options.Find().SetSort(bson.M{"_id": 1}))
	if err != nil {
		return nil, classify(err)
	}
	var ds []domain
	if err := cur.All(ctx, &ds); err != nil {
		return nil, classify(err)
	}
	out := make([]Domain, len(ds))
	for i, d := range ds {
		out[i] = Domain{Host: d.Host, AppID: d.AppID}
	}
	return out, nil
}

// DomainMisses returns how many re-checks in a row found custom domain
// host of app appID not pointing at it; ErrNotFound if the app no longer
// has it.
func (s *Store) DomainMisses(ctx context.Context, host, appID string) (int, error) {
	var d domain
	if err := s.domains().FindOne(ctx, bson.M{"_id": host, "app_id": appID}).Decode(&d); err != nil {
		return 0, classify(err)
	}
	return d.Misses, nil
}

// SetDomainMisses records how many re-checks in a row found custom domain
// host of app appID not pointing at it; ErrNotFound if the app no longer
// has it.
func (s *Store) SetDomainMisses(ctx context.Context, host, appID string, misses int) error {
	res, err := s.domains().UpdateOne(ctx, bson.M{"_id": host, "app_id": appID}, bson.M{"$set": bson.M{"misses": misses}})
	if err != nil {
		return classify(err)
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// deleteAppDomains removes every custom domain of app appID.
func (s *Store) deleteAppDomains(ctx context.Context, appID string) error {
	_, err := s.domains().DeleteMany(ctx, bson.M{"app_id": appID})
	return classify(err)
}
