package dbfront

import (
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Command classes. A command in none of them is refused.
var (
	// handshake commands pass before authentication and need no database.
	handshake = map[string]bool{
		"hello": true, "isMaster": true, "ismaster": true, "ping": true,
		"buildInfo": true, "buildinfo": true, "saslStart": true, "saslContinue": true,
		"endSessions": true, "whatsmyuri": true,
	}
	// dbCommands pass when $db is one of the caller's databases.
	dbCommands = map[string]bool{
		"find": true, "insert": true, "update": true, "delete": true,
		"findAndModify": true, "findandmodify": true, "aggregate": true,
		"count": true, "distinct": true, "getMore": true, "killCursors": true,
		"listCollections": true, "listIndexes": true, "createIndexes": true,
		"dropIndexes": true, "deleteIndexes": true, "create": true, "drop": true,
		"dropDatabase": true, "collStats": true, "dbStats": true, "dataSize": true,
		"collMod": true, "validate": true, "explain": true, "compact": true,
	}
	// adminCommands are sent to admin but name their databases inside;
	// each is checked (or answered) by the front itself.
	adminCommands = map[string]bool{
		"listDatabases": true, "renameCollection": true, "connectionStatus": true,
	}
	// writeCommands may grow the caller's storage and are held to the quota.
	writeCommands = map[string]bool{
		"insert": true, "update": true, "findAndModify": true, "findandmodify": true,
		"create": true, "createIndexes": true, "collMod": true,
	}
	// freeingCommands may shrink the caller's storage: the next quota check
	// measures again.
	freeingCommands = map[string]bool{
		"delete": true, "drop": true, "dropDatabase": true, "dropIndexes": true,
		"deleteIndexes": true, "findAndModify": true, "findandmodify": true,
		"update": true, "compact": true, "renameCollection": true,
	}
	// forbiddenStages expose other users' work or the server's state.
	forbiddenStages = map[string]bool{
		"$currentOp": true, "$listSessions": true, "$listLocalSessions": true,
		"$changeStream": true, "$planCacheStats": true, "$listSearchIndexes": true,
		"$shardedDataDistribution": true, "$listCatalog": true, "$querySettings": true,
		"$listClusterCatalog": true, "$changeStreamSplitLargeEvent": true,
	}
)

// ownFunc reports whether a database is the caller's.
type ownFunc func(db string) bool

// check decides whether an authenticated caller may run command name with
// body on database db. A nil result lets it pass.
func check(name, db string, body bson.Raw, own ownFunc) *cmdError {
	switch {
	case handshake[name]:
		return nil
	case adminCommands[name]:
		if db != "admin" {
			return unauthorized("%s must be run against the admin database", name)
		}
		if name == "renameCollection" {
			for _, key := range []string{"renameCollection", "to"} {
				ns, _ := body.Lookup(key).StringValueOK()
				d, _, ok := strings.Cut(ns, ".")
				if !ok || !own(d) {
					return unauthorized("not authorized on %s to rename collections: it is not one of your databases", d)
				}
			}
		}
		return nil
	case !dbCommands[name]:
		return &cmdError{code: codeCommandNotFound, name: "CommandNotFound", msg: "command " + name + " is not available on the platform database"}
	}
	if !own(db) {
		return unauthorized("not authorized on %s to execute command %s: it is not one of your databases", db, name)
	}
	if name == "dataSize" {
		ns, _ := body.Lookup("dataSize").StringValueOK()
		if d, _, _ := strings.Cut(ns, "."); d != db {
			return unauthorized("not authorized on %s to execute command dataSize", d)
		}
	}
	if name == "explain" {
		inner, ok := body.Lookup("explain").DocumentOK()
		if !ok {
			return &cmdError{code: codeBadValue, name: "BadValue", msg: "explain needs a command document"}
		}
		iname := commandName(inner)
		if !dbCommands[iname] || iname == "explain" {
			return unauthorized("explain of %s is not allowed", iname)
		}
		if idb, err := inner.LookupErr("$db"); err == nil {
			if s, ok := idb.StringValueOK(); !ok || s != db {
				return unauthorized("explain of a command on another database is not allowed")
			}
		}
		if err := check(iname, db, inner, own); err != nil {
			return err
		}
	}
	return checkNested(body, own, 0)
}

// checkNested walks a command document (skipping inserted documents) for
// aggregation stages that name another database or expose server state.
func checkNested(doc bson.Raw, own ownFunc, depth int) *cmdError {
	if depth > 100 {
		return unauthorized("command nests too deeply")
	}
	elems, err := doc.Elements()
	if err != nil {
		return &cmdError{code: codeBadValue, name: "BadValue", msg: "malformed command document"}
	}
	for _, e := range elems {
		key := e.Key()
		if depth == 0 && key == "documents" {
			continue
		}
		if forbiddenStages[key] {
			return unauthorized("aggregation stage %s is not allowed on the platform database", key)
		}
		v := e.Value()
		switch key {
		case "$out":
			if err := checkNS(v, "db", own, key); err != nil {
				return err
			}
		case "$merge":
			if d, ok := v.DocumentOK(); ok {
				if err := checkNS(d.Lookup("into"), "db", own, key); err != nil {
					return err
				}
			}
		case "$lookup", "$graphLookup":
			if d, ok := v.DocumentOK(); ok {
				if err := checkNS(d.Lookup("from"), "db", own, key); err != nil {
					return err
				}
			}
		case "$unionWith":
			if err := checkNS(v, "db", own, key); err != nil {
				return err
			}
		}
		var sub bson.Raw
		switch v.Type {
		case bson.TypeEmbeddedDocument:
			sub = v.Document()
		case bson.TypeArray:
			sub = bson.Raw(v.Array())
		default:
			continue
		}
		if err := checkNested(sub, own, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// checkNS checks a stage's target: a collection name (same database) or a
// document whose field dbKey, if present, must be one of the caller's.
func checkNS(v bson.RawValue, dbKey string, own ownFunc, stage string) *cmdError {
	d, ok := v.DocumentOK()
	if !ok {
		return nil
	}
	dv, err := d.LookupErr(dbKey)
	if err != nil {
		return nil
	}
	db, ok := dv.StringValueOK()
	if !ok || !own(db) {
		return unauthorized("%s into or from database %s is not allowed: it is not one of your databases", stage, dv.String())
	}
	return nil
}
