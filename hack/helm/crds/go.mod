// Pinned sources of third-party CRDs that the chart can render objects of: KEDA's
// ScaledObject and TriggerAuthentication (autoscaling.engine: keda) and the Prometheus
// Operator's ServiceMonitor (metrics.serviceMonitor.enabled). The tests install these CRDs
// into the local control plane and validate the chart's rendering against their schemas
// with a server-side dry run. Nothing here is compiled: fetch.sh downloads the module zips
// (verified against go.sum) and copies the CRD files out of the module cache.
module asynctask.dev/hack/helm/crds

go 1.26.0

require (
	github.com/kedacore/keda/v2 v2.21.0
	github.com/prometheus-operator/prometheus-operator v0.85.0
)
