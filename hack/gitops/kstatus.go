package main

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// kstatus is status.Compute on the object as it is: InProgress, Current, Failed,
// Terminating or Unknown, with kstatus's own message.
func kstatus(obj map[string]any) (Verdict, error) {
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return Verdict{}, err
	}
	return Verdict{Status: string(res.Status), Message: res.Message}, nil
}
