package dbfront

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestCheck(t *testing.T) {
	own := func(db string) bool { return db == "mine" || db == "mine2" }
	tests := []struct {
		name string
		db   string
		cmd  bson.D
		want int32 // 0: passes
	}{
		{"find own", "mine", bson.D{{Key: "find", Value: "c"}}, 0},
		{"find other", "theirs", bson.D{{Key: "find", Value: "c"}}, codeUnauthorized},
		{"no $db", "", bson.D{{Key: "find", Value: "c"}}, codeUnauthorized},
		{"unknown command", "mine", bson.D{{Key: "cloneCollection", Value: "theirs.c"}}, codeCommandNotFound},
		{"createUser", "admin", bson.D{{Key: "createUser", Value: "x"}}, codeCommandNotFound},
		{"hello anywhere", "admin", bson.D{{Key: "hello", Value: 1}}, 0},
		{"listDatabases on admin", "admin", bson.D{{Key: "listDatabases", Value: 1}}, 0},
		{"rename within own", "admin", bson.D{{Key: "renameCollection", Value: "mine.a"}, {Key: "to", Value: "mine2.b"}}, 0},
		{"rename to other", "admin", bson.D{{Key: "renameCollection", Value: "mine.a"}, {Key: "to", Value: "theirs.b"}}, codeUnauthorized},
		{"rename without to", "admin", bson.D{{Key: "renameCollection", Value: "mine.a"}}, codeUnauthorized},
		{"dataSize other", "mine", bson.D{{Key: "dataSize", Value: "theirs.c"}}, codeUnauthorized},
		{"$out string", "mine", bson.D{{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$out", Value: "x"}}}}}, 0},
		{"$out other", "mine", bson.D{{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$out", Value: bson.D{{Key: "db", Value: "theirs"}, {Key: "coll", Value: "x"}}}}}}}, codeUnauthorized},
		{"$out own second", "mine", bson.D{{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$out", Value: bson.D{{Key: "db", Value: "mine2"}, {Key: "coll", Value: "x"}}}}}}}, 0},
		{"$out db not a string", "mine", bson.D{{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$out", Value: bson.D{{Key: "db", Value: 1}}}}}}}, codeUnauthorized},
		{"$lookup deep in $facet", "mine", bson.D{{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$facet", Value: bson.D{{Key: "f", Value: bson.A{
			bson.D{{Key: "$lookup", Value: bson.D{{Key: "from", Value: "c"}, {Key: "as", Value: "x"}, {Key: "pipeline", Value: bson.A{
				bson.D{{Key: "$unionWith", Value: bson.D{{Key: "db", Value: "theirs"}, {Key: "coll", Value: "c"}}}}}}}}}}}}}}}}}, codeUnauthorized},
		{"$graphLookup other", "mine", bson.D{{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$graphLookup", Value: bson.D{{Key: "from", Value: bson.D{{Key: "db", Value: "theirs"}, {Key: "coll", Value: "c"}}}}}}}}}, codeUnauthorized},
		{"$currentOp", "mine", bson.D{{Key: "aggregate", Value: 1}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$currentOp", Value: bson.D{}}}}}}, codeUnauthorized},
		{"a user field named db is data", "mine", bson.D{{Key: "find", Value: "c"}, {Key: "filter", Value: bson.D{{Key: "db", Value: "theirs"}}}}, 0},
		{"explain of a find elsewhere runs on $db", "mine", bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "c"}}}}, 0},
		{"explain naming another $db", "mine", bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "c"}, {Key: "$db", Value: "theirs"}}}}, codeUnauthorized},
		{"explain with a non-string $db", "mine", bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "c"}, {Key: "$db", Value: 3}}}}, codeUnauthorized},
		{"explain of an admin command", "mine", bson.D{{Key: "explain", Value: bson.D{{Key: "renameCollection", Value: "theirs.c"}}}}, codeUnauthorized},
		{"view over another database", "mine", bson.D{{Key: "create", Value: "v"}, {Key: "viewOn", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$lookup", Value: bson.D{{Key: "from", Value: bson.D{{Key: "db", Value: "theirs"}, {Key: "coll", Value: "c"}}}}}}}}}, codeUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := bson.Marshal(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			got := check(commandName(body), tc.db, body, own)
			switch {
			case tc.want == 0 && got != nil:
				t.Errorf("refused: %v", got)
			case tc.want != 0 && got == nil:
				t.Errorf("passed, want code %d", tc.want)
			case tc.want != 0 && got.code != tc.want:
				t.Errorf("code %d (%v), want %d", got.code, got, tc.want)
			}
		})
	}
}
