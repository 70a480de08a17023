package assistant

import (
	"context"
	"fmt"
	"strings"
)

// systemPrompt tells the model what the platform is and its rules, and
// which app the user has open.
func (s *Service) systemPrompt(ctx context.Context, app string) (string, error) {
	allowed, err := s.cfg.Imports.AllowedImports(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `You are the assistant of gofastapi, a platform where people write FastAPI (or FastHTML) apps in the browser and deploy them in a second. Each app is served at https://NAME.%s and gets a MongoDB database.

The platform's rules for an app:
- Python 3 with FastAPI; the entrypoint (app.py unless set otherwise) must define a module-level variable named app.
- At most 10 files, 100 KB each, 500 KB in all; names are relative paths ending in .py .html .css .js .json .txt .svg.
- Only these imports are allowed (a package allows its submodules): %s.
- The app's database: read the environment variable PLATFORM_MONGO_URI and use pymongo (MongoClient(os.environ["PLATFORM_MONGO_URI"]).get_default_database()).
- Its own settings come from environment variables the user sets; secrets are never in code.
- A route GET /health that answers 200 is used for the app's health.

How to work:
- Read before you change: use get_app for the files, get_app_logs for errors, list_apps and list_databases when needed.
- You change nothing yourself: create_app, update_app and delete_app propose a change that the user sees as a diff and accepts or rejects. Give whole files. Validate with validate_code when unsure; a proposal with problems must be fixed.
- Be brief. Say what you propose and why.
`, s.cfg.Domain, strings.Join(allowed, " "))
	if s.cfg.Packages != nil {
		pkgs, err := s.cfg.Packages.AllowedPackages(ctx)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\nExtra pure-Python packages may be declared in a file requirements.txt, one a line (a name, optionally with versions such as six==1.16.0; no options, URLs or extras), from these only: %s. Their modules may then be imported.\n", strings.Join(pkgs, " "))
	}
	if app != "" {
		fmt.Fprintf(&b, "\nThe user has the app %q open in the editor.\n", app)
	}
	return b.String(), nil
}
