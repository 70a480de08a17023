package dbfront

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// MongoDB wire protocol opcodes the front understands.
const (
	opReply      = 1
	opQuery      = 2004
	opCompressed = 2012
	opMsg        = 2013
)

// OP_MSG flag bits.
const (
	flagChecksumPresent = 1 << 0
	flagMoreToCome      = 1 << 1
	flagExhaustAllowed  = 1 << 16
)

// maxMessageSize bounds one message, as MongoDB's maxMessageSizeBytes.
const maxMessageSize = 48_000_000

// header is a message's standard header.
type header struct {
	length     int32
	requestID  int32
	responseTo int32
	opCode     int32
}

// maxPreAuthMessageSize bounds a message before authentication: a hello
// or a SASL step is small, and an anonymous client must not make the front
// allocate 48 MB per connection.
const maxPreAuthMessageSize = 64 << 10

// readMessage reads one whole message, of at most max bytes: its header
// and its body (the bytes after the header).
func readMessage(r io.Reader, max int32) (header, []byte, error) {
	var hb [16]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return header{}, nil, err
	}
	h := header{
		length:     int32(binary.LittleEndian.Uint32(hb[0:])),
		requestID:  int32(binary.LittleEndian.Uint32(hb[4:])),
		responseTo: int32(binary.LittleEndian.Uint32(hb[8:])),
		opCode:     int32(binary.LittleEndian.Uint32(hb[12:])),
	}
	if h.length < 16 || h.length > max {
		return h, nil, fmt.Errorf("message length %d out of range", h.length)
	}
	body := make([]byte, h.length-16)
	if _, err := io.ReadFull(r, body); err != nil {
		return h, nil, err
	}
	return h, body, nil
}

// writeMessage writes a message with the given header fields and body.
func writeMessage(w io.Writer, requestID, responseTo, opCode int32, body []byte) error {
	buf := make([]byte, 16, 16+len(body))
	binary.LittleEndian.PutUint32(buf[0:], uint32(16+len(body)))
	binary.LittleEndian.PutUint32(buf[4:], uint32(requestID))
	binary.LittleEndian.PutUint32(buf[8:], uint32(responseTo))
	binary.LittleEndian.PutUint32(buf[12:], uint32(opCode))
	_, err := w.Write(append(buf, body...))
	return err
}

// sequence is an OP_MSG kind-1 section: a named run of documents, such as
// the "documents" of an insert.
type sequence struct {
	id   string
	docs []bson.Raw
}

// msg is a parsed OP_MSG.
type msg struct {
	flags uint32
	body  bson.Raw
	seqs  []sequence
}

var errBadMessage = errors.New("malformed message")

// parseMsg parses the body of an OP_MSG.
func parseMsg(b []byte) (*msg, error) {
	if len(b) < 5 {
		return nil, errBadMessage
	}
	m := &msg{flags: binary.LittleEndian.Uint32(b)}
	b = b[4:]
	if m.flags&flagChecksumPresent != 0 {
		if len(b) < 4 {
			return nil, errBadMessage
		}
		b = b[:len(b)-4]
	}
	for len(b) > 0 {
		kind := b[0]
		b = b[1:]
		switch kind {
		case 0:
			doc, rest, ok := bsoncore.ReadDocument(b)
			if !ok || m.body != nil {
				return nil, errBadMessage
			}
			if err := doc.Validate(); err != nil {
				return nil, errBadMessage
			}
			m.body, b = bson.Raw(doc), rest
		case 1:
			if len(b) < 4 {
				return nil, errBadMessage
			}
			size := int(binary.LittleEndian.Uint32(b))
			if size < 4 || size > len(b) {
				return nil, errBadMessage
			}
			sec := b[4:size]
			b = b[size:]
			id, rest, ok := readCString(sec)
			if !ok {
				return nil, errBadMessage
			}
			s := sequence{id: id}
			for len(rest) > 0 {
				doc, r, ok := bsoncore.ReadDocument(rest)
				if !ok || doc.Validate() != nil {
					return nil, errBadMessage
				}
				s.docs = append(s.docs, bson.Raw(doc))
				rest = r
			}
			m.seqs = append(m.seqs, s)
		default:
			return nil, errBadMessage
		}
	}
	if m.body == nil {
		return nil, errBadMessage
	}
	return m, nil
}

// encode returns the OP_MSG body of m (without a checksum).
func (m *msg) encode() []byte {
	out := binary.LittleEndian.AppendUint32(nil, m.flags&^flagChecksumPresent)
	out = append(out, 0)
	out = append(out, m.body...)
	for _, s := range m.seqs {
		out = append(out, 1)
		start := len(out)
		out = append(out, 0, 0, 0, 0)
		out = append(out, s.id...)
		out = append(out, 0)
		for _, d := range s.docs {
			out = append(out, d...)
		}
		binary.LittleEndian.PutUint32(out[start:], uint32(len(out)-start))
	}
	return out
}

// replyMsg returns the OP_MSG body of a reply carrying doc.
func replyMsg(doc bson.Raw) []byte {
	out := make([]byte, 5, 5+len(doc))
	return append(out, doc...)
}

// query is a parsed legacy OP_QUERY, which drivers still use for the first
// hello of a connection.
type query struct {
	flags      int32
	collection string
	skip, n    int32
	doc        bson.Raw
	fields     bson.Raw
}

func parseQuery(b []byte) (*query, error) {
	if len(b) < 4 {
		return nil, errBadMessage
	}
	q := &query{flags: int32(binary.LittleEndian.Uint32(b))}
	coll, rest, ok := readCString(b[4:])
	if !ok || len(rest) < 8 {
		return nil, errBadMessage
	}
	q.collection = coll
	q.skip = int32(binary.LittleEndian.Uint32(rest))
	q.n = int32(binary.LittleEndian.Uint32(rest[4:]))
	doc, rest, ok := bsoncore.ReadDocument(rest[8:])
	if !ok || doc.Validate() != nil {
		return nil, errBadMessage
	}
	q.doc = bson.Raw(doc)
	if len(rest) > 0 {
		f, _, ok := bsoncore.ReadDocument(rest)
		if !ok {
			return nil, errBadMessage
		}
		q.fields = bson.Raw(f)
	}
	return q, nil
}

func (q *query) encode() []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(q.flags))
	out = append(out, q.collection...)
	out = append(out, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(q.skip))
	out = binary.LittleEndian.AppendUint32(out, uint32(q.n))
	out = append(out, q.doc...)
	return append(out, q.fields...)
}

// parseReply returns the first document of an OP_REPLY body.
func parseReply(b []byte) (flags int32, doc bson.Raw, err error) {
	// responseFlags, cursorID, startingFrom, numberReturned, documents
	if len(b) < 20 {
		return 0, nil, errBadMessage
	}
	d, _, ok := bsoncore.ReadDocument(b[20:])
	if !ok {
		return 0, nil, errBadMessage
	}
	return int32(binary.LittleEndian.Uint32(b)), bson.Raw(d), nil
}

// replyBody returns an OP_REPLY body carrying one document.
func replyBody(flags int32, doc bson.Raw) []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(flags))
	out = binary.LittleEndian.AppendUint64(out, 0)
	out = binary.LittleEndian.AppendUint32(out, 0)
	out = binary.LittleEndian.AppendUint32(out, 1)
	return append(out, doc...)
}

// commandName is the first key of a command document.
func commandName(doc bson.Raw) string {
	e, err := doc.IndexErr(0)
	if err != nil {
		return ""
	}
	return e.Key()
}

// withFields returns doc without the keys in drop and with set appended
// (replacing keys of the same name).
func withFields(doc bson.Raw, drop []string, set bson.D) bson.Raw {
	skip := map[string]bool{}
	for _, k := range drop {
		skip[k] = true
	}
	for _, e := range set {
		skip[e.Key] = true
	}
	idx, b := bsoncore.AppendDocumentStart(nil)
	elems, _ := doc.Elements()
	for _, e := range elems {
		if !skip[e.Key()] {
			b = append(b, e...)
		}
	}
	for _, e := range set {
		raw, err := bson.Marshal(bson.D{e})
		if err != nil {
			continue
		}
		// raw is a document of one element: copy that element.
		b = append(b, raw[4:len(raw)-1]...)
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return bson.Raw(b)
}

// readCString reads a NUL-terminated string.
func readCString(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", b, false
}
