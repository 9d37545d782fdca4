// tekton-validate: check Tekton Task documents with Tekton's own code, the same validation its admission
// webhook runs when a Task is applied to a cluster (strict decoding: an unknown or misspelt field is an error;
// then SetDefaults and Validate of github.com/tektoncd/pipeline/pkg/apis/pipeline/v1). No cluster is needed.
//
// Usage: tekton-validate FILE...   Exit 0 if every document is a valid Task, 1 otherwise (one line per
// problem on stderr). On success, stdout has one JSON line per Task as Tekton decoded and defaulted it, so a
// test can run its step scripts. Built by scripts/tekton-validate-build.sh; used by tests/test_ci_templates_static.py.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tekton-validate FILE...")
		os.Exit(2)
	}
	failed := false
	for _, name := range os.Args[1:] {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			failed = true
			continue
		}
		for i, doc := range bytes.Split(data, []byte("\n---")) {
			if len(strings.TrimSpace(stripComments(string(doc)))) == 0 {
				continue
			}
			if err := check(doc); err != nil {
				fmt.Fprintf(os.Stderr, "%s: document %d: %s\n", name, i+1, strings.ReplaceAll(err.Error(), "\n", "; "))
				failed = true
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}

func check(doc []byte) error {
	var task v1.Task
	if err := yaml.UnmarshalStrict(doc, &task); err != nil {
		return fmt.Errorf("not a valid Tekton Task: %w", err)
	}
	if task.Kind != "Task" || task.APIVersion != "tekton.dev/v1" {
		return fmt.Errorf("expected kind Task, apiVersion tekton.dev/v1; got %s %s", task.Kind, task.APIVersion)
	}
	ctx := context.Background()
	task.SetDefaults(ctx)
	if ferr := task.Validate(ctx); ferr != nil {
		return ferr
	}
	return json.NewEncoder(os.Stdout).Encode(task)
}

func stripComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
