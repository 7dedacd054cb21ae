// Command gitops-health answers, with the GitOps tools' own code, what a tool shows for
// an object: `kstatus` runs sigs.k8s.io/cli-utils' status.Compute (what Flux's
// kustomize-controller and helm-controller wait on), `argocd SCRIPT` runs an Argo CD
// health.lua in gopher-lua (the Lua 5.1 interpreter Argo CD embeds) the way Argo CD runs
// a health check configured in argocd-cm.
//
// Input (a file argument, or stdin): one object, a JSON/YAML array of objects, or a
// `kind: List` with `items`, in JSON or YAML. Output (stdout): a JSON array with one
// {"status", "message"} per object, in order. A failure exits non-zero with a message on
// stderr: a test reading the output can never mistake an error for an answer.
//
// Built and cached by build.sh; the tests call it (tests/gitops.py).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// Verdict is what a tool says about one object.
type Verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

const usage = `usage: gitops-health kstatus [FILE]
       gitops-health argocd HEALTH_LUA [FILE]
Reads objects (one, an array, or a List; JSON or YAML) from FILE or stdin and prints a
JSON array of {"status", "message"}, one per object.`

func main() {
	verdicts, err := run(os.Args[1:], os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gitops-health:", err)
		os.Exit(1)
	}
	out, err := json.Marshal(verdicts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gitops-health:", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}

func run(args []string, stdin io.Reader) ([]Verdict, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("no command\n%s", usage)
	}
	switch {
	case args[0] == "kstatus" && len(args) <= 2:
		objects, err := readObjects(args[1:], stdin)
		if err != nil {
			return nil, err
		}
		return each(objects, kstatus)
	case args[0] == "argocd" && (len(args) == 2 || len(args) == 3):
		script, err := os.ReadFile(args[1])
		if err != nil {
			return nil, err
		}
		objects, err := readObjects(args[2:], stdin)
		if err != nil {
			return nil, err
		}
		return each(objects, func(obj map[string]any) (Verdict, error) {
			return argocdHealth(string(script), obj)
		})
	}
	return nil, fmt.Errorf("unexpected arguments %q\n%s", args, usage)
}

func each(objects []map[string]any, fn func(map[string]any) (Verdict, error)) ([]Verdict, error) {
	out := make([]Verdict, 0, len(objects))
	for i, obj := range objects {
		v, err := fn(obj)
		if err != nil {
			return nil, fmt.Errorf("object %d: %w", i, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// readObjects parses the input into objects (maps). YAML is converted to JSON first, and
// JSON is decoded as client-go decodes it (integers as int64), so the objects are what
// Flux and Argo CD get from the apiserver.
func readObjects(paths []string, stdin io.Reader) ([]map[string]any, error) {
	var data []byte
	var err error
	if len(paths) == 1 {
		data, err = os.ReadFile(paths[0])
	} else {
		data, err = io.ReadAll(stdin)
	}
	if err != nil {
		return nil, err
	}
	asJSON, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("input is neither JSON nor YAML: %w", err)
	}
	var doc any
	if err := utiljson.Unmarshal(asJSON, &doc); err != nil {
		return nil, err
	}
	var items []any
	switch d := doc.(type) {
	case []any:
		items = d
	case map[string]any:
		if list, ok := d["items"].([]any); ok && d["kind"] == "List" {
			items = list
		} else {
			items = []any{d}
		}
	default:
		return nil, fmt.Errorf("input is not an object, an array or a List")
	}
	objects := make([]map[string]any, 0, len(items))
	for i, item := range items {
		obj, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d is not an object", i)
		}
		objects = append(objects, obj)
	}
	return objects, nil
}
