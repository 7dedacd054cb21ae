// Command celcost measures what the AsyncTask CRD's CEL rules cost the apiserver on a status
// write, with the apiserver's own validator (k8s.io/apiextensions-apiserver at the control
// plane's pin): each CRD given is compiled, then validated N times (default 20000) against
// an object whose spec is unchanged, as on every status write; then a list of spec changes
// shows what each CRD refuses and with what message (the same for every CRD that guards
// the same fields). A benchmark: run it under the heavy lock, CRDs back to back.
//
//	cd hack/controlplane && go run ./celcost ../../deploy/crds/asynctask.dev_asynctasks.yaml OTHER.yaml
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

func validator(path string) (*cel.Validator, *structuralschema.Structural) {
	raw, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		panic(err)
	}
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, &internal, nil); err != nil {
		panic(err)
	}
	s, err := structuralschema.NewStructural(&internal)
	if err != nil {
		panic(err)
	}
	return cel.NewValidator(s, true, celconfig.PerCallLimit), s
}

func obj(spec map[string]interface{}) map[string]interface{} {
	return map[string]interface{}{
		"apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncTask",
		"metadata": map[string]interface{}{"name": "t", "namespace": "n"},
		"spec":     spec,
		"status":   map[string]interface{}{"phase": "Succeeded", "observedGeneration": int64(1)},
	}
}

func base() map[string]interface{} {
	return map[string]interface{}{"queue": "noop", "priority": int64(0), "request": map[string]interface{}{"n": int64(1)}}
}

func with(k string, v interface{}) map[string]interface{} {
	b := base()
	if v == nil {
		delete(b, k)
	} else {
		b[k] = v
	}
	return b
}

func main() {
	ctx := context.Background()
	for _, path := range os.Args[1:] {
		v, s := validator(path)
		same := obj(base())
		n := 20000
		if os.Getenv("N") != "" {
			fmt.Sscan(os.Getenv("N"), &n)
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			errs, _ := v.Validate(ctx, nil, s, same, obj(base()), celconfig.RuntimeCELCostBudget)
			if len(errs) > 0 {
				panic(errs)
			}
		}
		fmt.Printf("%s: %.1f µs per unchanged-spec validation (%d)\n", path, float64(time.Since(start).Microseconds())/float64(n), n)
		cases := []struct {
			name     string
			old, new map[string]interface{}
		}{
			{"queue", base(), with("queue", "other")},
			{"timeout added", base(), with("timeoutSeconds", int64(5))},
			{"timeout changed", with("timeoutSeconds", int64(5)), with("timeoutSeconds", int64(9))},
			{"timeout removed", with("timeoutSeconds", int64(5)), base()},
			{"retries", with("retries", int64(1)), with("retries", int64(5))},
			{"ttl", base(), with("ttlSecondsAfterFinished", int64(9))},
			{"webhook", with("webhook", map[string]interface{}{"url": "https://a"}), with("webhook", map[string]interface{}{"url": "https://b"})},
			{"notBefore", with("notBefore", "2026-01-01T00:00:00Z"), with("notBefore", "2026-01-02T00:00:00Z")},
			{"priority", base(), with("priority", int64(8))},
			{"requestRef", base(), with("requestRef", map[string]interface{}{"bucket": "bkt", "key": "k", "size": int64(1), "sha256": "x"})},
			{"cancel undone", with("cancel", true), with("cancel", false)},
			{"cancel removed", with("cancel", true), base()},
			{"cancel set (ok)", base(), with("cancel", true)},
			{"cancel false->absent (ok)", with("cancel", false), base()},
			{"request changed (not CRD's)", base(), with("request", "x")},
			{"two at once", base(), func() map[string]interface{} { b := with("queue", "other"); b["retries"] = int64(2); return b }()},
		}
		for _, c := range cases {
			errs, _ := v.Validate(ctx, nil, s, obj(c.new), obj(c.old), celconfig.RuntimeCELCostBudget)
			fmt.Printf("  %-28s %v\n", c.name, errs.ToAggregate())
		}
	}
}
