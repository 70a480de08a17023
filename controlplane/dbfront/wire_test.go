package dbfront

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestMsgRoundTrip(t *testing.T) {
	body, _ := bson.Marshal(bson.D{{Key: "insert", Value: "c"}, {Key: "$db", Value: "d"}})
	d1, _ := bson.Marshal(bson.D{{Key: "_id", Value: 1}})
	d2, _ := bson.Marshal(bson.D{{Key: "_id", Value: 2}})
	m := &msg{flags: flagMoreToCome, body: body, seqs: []sequence{{id: "documents", docs: []bson.Raw{d1, d2}}}}
	got, err := parseMsg(m.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.flags != m.flags || !bytes.Equal(got.body, m.body) || len(got.seqs) != 1 || got.seqs[0].id != "documents" || len(got.seqs[0].docs) != 2 {
		t.Errorf("round trip: %+v, want %+v", got, m)
	}
}

func TestParseMsgRejectsMalformed(t *testing.T) {
	body, _ := bson.Marshal(bson.D{{Key: "ping", Value: 1}})
	good := (&msg{body: body}).encode()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"flags only", good[:4]},
		{"truncated body", good[:len(good)-2]},
		{"unknown section kind", append(append([]byte{}, good[:4]...), 7)},
		{"two bodies", append(append([]byte{}, good...), good[4:]...)},
		{"sequence longer than message", append(append([]byte{}, good...), 1, 0xff, 0, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseMsg(tc.b); err == nil {
				t.Error("parsed")
			}
		})
	}
}

func TestReadMessageBoundsSize(t *testing.T) {
	var buf bytes.Buffer
	writeMessage(&buf, 1, 0, opMsg, make([]byte, 100))
	if _, _, err := readMessage(bytes.NewReader(buf.Bytes()), 64); err == nil {
		t.Error("a 116-byte message passed a 64-byte bound")
	}
	h, b, err := readMessage(bytes.NewReader(buf.Bytes()), 1000)
	if err != nil || h.opCode != opMsg || len(b) != 100 {
		t.Errorf("readMessage = %+v, %d bytes, %v", h, len(b), err)
	}
}

func TestWithFields(t *testing.T) {
	doc, _ := bson.Marshal(bson.D{{Key: "find", Value: "c"}, {Key: "maxTimeMS", Value: 99999}, {Key: "speculativeAuthenticate", Value: 1}})
	got := withFields(doc, []string{"speculativeAuthenticate"}, bson.D{{Key: "maxTimeMS", Value: int64(5000)}})
	var d bson.D
	if err := bson.Unmarshal(got, &d); err != nil {
		t.Fatal(err)
	}
	want := bson.D{{Key: "find", Value: "c"}, {Key: "maxTimeMS", Value: int64(5000)}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
