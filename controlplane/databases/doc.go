// Package databases is the platform database service: each user's MongoDB
// databases, their credentials, their limits and their data.
//
// A user's first database ("default") and their credentials are created on
// first use: the first call of the DatabaseService, or the first start of
// one of their apps (AppEnv). A user has up to their limit of databases
// (store.Limits.Databases); each has a changeable name and a fixed name
// inside the store (StoreName: username_xxxxxxxx), which is what apps see,
// so renaming never disturbs a running app. The password is random, sealed
// at rest under the platform key (package secretbox), rotatable; rotation closes
// the old password's connections at the front and restarts the user's apps.
//
// Apps get PLATFORM_MONGO_URI (AppEnv): the front's address, the owner's
// credentials, and the app's database (chosen, else the owner's default) as
// the URI's default database. The front (package dbfront) and, with
// MongoDB's own users, the user sync (package mongousers) ask the service
// for accounts (Account) and the service tells them when an account changes
// (AccountWatcher.Refresh). The data browser RPCs and the data viewer act
// on the caller's own databases only, through the platform's own
// connection to the store.
package databases
