package dbfront

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// StoreSizer measures databases with dbStats over a platform connection to
// the store: data plus indexes, as the store lays them out.
type StoreSizer struct{ Client *mongo.Client }

var _ Sizer = StoreSizer{}

// Size implements Sizer.
func (s StoreSizer) Size(ctx context.Context, dbs []string) (int64, error) {
	var total int64
	for _, d := range dbs {
		raw, err := s.Client.Database(d).RunCommand(ctx, bson.D{{Key: "dbStats", Value: 1}, {Key: "scale", Value: 1}}).Raw()
		if err != nil {
			return 0, fmt.Errorf("dbStats %s: %w", d, err)
		}
		for _, k := range []string{"dataSize", "indexSize"} {
			if v, err := raw.LookupErr(k); err == nil {
				n, _ := v.AsFloat64OK()
				total += int64(n)
			}
		}
	}
	return total, nil
}
