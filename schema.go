// Package foldup holds what belongs to the whole repository rather than to
// one package: the JSON schema of foldup.yaml.
package foldup

import _ "embed"

//go:generate go run ./internal/schemagen/cmd schema.json

// Schema is the JSON schema (draft 2020-12) of a foldup file: the Compose
// specification plus foldup's vms, dns and x-foldup sections. Editors use it
// through the yaml-language-server comment shown in README.md; spec.Load
// validates every file against it.
//
//go:embed schema.json
var Schema []byte
