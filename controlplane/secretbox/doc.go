// Package secretbox encrypts small secrets at rest (app secrets, database
// credentials) with AES-256-GCM under the platform key.
//
// The key file holds one or more 32-byte keys, hex encoded, one per line.
// The first line is the primary key: everything is sealed with it. The other
// lines are older keys, kept so values sealed before a rotation still open.
// Every sealed value names the key that sealed it (the first 4 bytes of the
// key's sha256), so rotation is: put a new key on the first line (Rotate
// does, see `gofastapi keys rotate`), restart, and re-seal at leisure
// (values are re-sealed with the primary key whenever they are written);
// once nothing sealed with an old key remains, drop its line.
package secretbox
