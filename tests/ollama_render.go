// Renders an Ollama TEMPLATE with Go's own text/template, the engine Ollama uses, for
// tests/export/test_ollama.py. Input on stdin, JSON: {"template", "system", "messages",
// "keep_system"}. The data is shaped as Ollama's template.Execute shapes it for templates
// that use .Messages: .System holds the system messages joined by "\n\n", and .Messages
// keeps them (current Ollama) or drops them (older releases), as keep_system says.
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type message struct {
	Role    string
	Content string
}

type request struct {
	Template   string    `json:"template"`
	System     string    `json:"system"`
	Messages   []message `json:"messages"`
	KeepSystem bool      `json:"keep_system"`
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		panic(err)
	}
	var kept []message
	for _, m := range req.Messages {
		if m.Role != "system" || req.KeepSystem {
			kept = append(kept, m)
		}
	}
	tmpl := template.Must(template.New("").Parse(req.Template))
	data := map[string]any{"System": req.System, "Messages": kept, "Prompt": "", "Response": ""}
	if err := tmpl.Execute(os.Stdout, data); err != nil {
		panic(err)
	}
}
