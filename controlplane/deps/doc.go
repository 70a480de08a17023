// Package deps installs the extra Python packages an app declares in its
// requirements.txt (PRODUCT.md section 10).
//
// Parse reads the file: one package per line, a name with an optional
// version specifier (`python-dateutil`, `six==1.16.0`, `attrs>=23,<25`),
// comments and blank lines; options, URLs, paths, extras and environment
// markers are refused with their line. Every package named must be on the
// admin's dependency allowlist.
//
// Resolver.Resolve installs the requirements with pip, from the package
// index the platform is configured with (--package-index), as wheels only,
// so that no package's code runs at install; then it refuses the result if
// any file is a native extension, if any package installed as a dependency
// is neither on the allowlist nor already in the runners' Python, or if it
// is larger than bundle.MaxDepsBytes. The packages become one archive
// (bundle.PackDeps) addressed by its content hash, which the version and its
// route carry and the runner unpacks once per host.
//
// Installs are cached by content: the key (Key) covers the normalized
// requirements, the runners' Python and the index, so a second app with the
// same requirements pays nothing. The platform database keeps each set and
// its archive, so Redis, which runners fetch the archive from, stays a
// cache.
package deps
