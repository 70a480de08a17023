// Package templates implements TemplateService: the global templates
// shipped in the binary (package templates at the top of the module),
// validated when the service starts, and each user's own templates, kept
// in the platform database. It also finds the template an app is created
// from (apps.Templates).
package templates
