{{/* Names ------------------------------------------------------------------------ */}}

{{- define "asynctask.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-asynctask", or the release name alone when it contains the chart name. */}}
{{- define "asynctask.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "asynctask.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "asynctask.operator.fullname" -}}
{{- printf "%s-operator" (include "asynctask.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "asynctask.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "asynctask.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "asynctask.worker.serviceAccountName" -}}
{{- if .Values.workers.serviceAccount.create -}}
{{- default (printf "%s-worker" (include "asynctask.fullname" .) | trunc 63 | trimSuffix "-") .Values.workers.serviceAccount.name -}}
{{- else -}}
{{- required "workers.serviceAccount.name is required when workers.serviceAccount.create is false" .Values.workers.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "asynctask.gateway.fullname" -}}
{{- printf "%s-gateway" (include "asynctask.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "asynctask.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create -}}
{{- default (include "asynctask.gateway.fullname" .) .Values.gateway.serviceAccount.name -}}
{{- else -}}
{{- required "gateway.serviceAccount.name is required when gateway.serviceAccount.create is false" .Values.gateway.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* A pool's Deployment name: dict "root" $ "pool" $pool */}}
{{- define "asynctask.pool.fullname" -}}
{{- printf "%s-worker-%s" (include "asynctask.fullname" .root) .pool.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels (app.kubernetes.io/*) ---------------------------------------------------- */}}

{{- define "asynctask.labels" -}}
helm.sh/chart: {{ include "asynctask.chart" . }}
{{ include "asynctask.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: asynctask
{{- end -}}

{{- define "asynctask.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asynctask.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Images --------------------------------------------------------------------------- */}}

{{/* dict "root" $ "image" <image values that may leave keys empty> */}}
{{- define "asynctask.image" -}}
{{- $top := .root.Values.image -}}
{{- $img := .image | default dict -}}
{{- $repository := $img.repository | default $top.repository -}}
{{- $digest := "" -}}
{{- $tag := "" -}}
{{- if $img.repository -}}
{{- $digest = $img.digest | default "" -}}
{{- $tag = $img.tag | default .root.Chart.AppVersion -}}
{{- else -}}
{{- $digest = $img.digest | default $top.digest -}}
{{- $tag = $img.tag | default $top.tag | default .root.Chart.AppVersion -}}
{{- end -}}
{{- if $digest -}}
{{- printf "%s@%s" $repository $digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- end -}}
{{- end -}}

{{/* Worker pools ---------------------------------------------------------------------- */}}

{{/* Merges dict .src into dict .dst in place, maps key by key at every depth; a key of
     .src always wins, also when its value is false, 0 or empty (unlike sprig's merge). */}}
{{- define "asynctask.mergeInto" -}}
{{- $dst := .dst -}}
{{- range $key, $value := .src -}}
{{- $current := get $dst $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- $copy := deepCopy $current -}}
{{- include "asynctask.mergeInto" (dict "dst" $copy "src" $value) -}}
{{- $_ := set $dst $key $copy -}}
{{- else -}}
{{- $_ := set $dst $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The pools with workers.defaults applied, as YAML: {pools: [...]}. */}}
{{- define "asynctask.pools" -}}
{{- $pools := list -}}
{{- $seen := dict -}}
{{- range .Values.workers.pools -}}
{{- if hasKey $seen .name -}}
{{- fail (printf "workers.pools: the name %q is used twice" .name) -}}
{{- end -}}
{{- $_ := set $seen .name true -}}
{{- if not (or .app .args) -}}
{{- fail (printf "workers.pools[%s]: set app (module:attribute) or args" .name) -}}
{{- end -}}
{{- $pool := deepCopy $.Values.workers.defaults -}}
{{- include "asynctask.mergeInto" (dict "dst" $pool "src" .) -}}
{{- if and $pool.autoscaling.enabled (gt (int $pool.autoscaling.minReplicas) (int $pool.autoscaling.maxReplicas)) -}}
{{- fail (printf "workers.pools[%s].autoscaling: minReplicas is greater than maxReplicas" .name) -}}
{{- end -}}
{{- $pools = append $pools $pool -}}
{{- end -}}
{{- toYaml (dict "pools" $pools) -}}
{{- end -}}

{{/* Security and the broker Secret ---------------------------------------------------- */}}

{{- define "asynctask.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "asynctask.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* An env var from the broker Secret: dict "root" $ "name" "ENV_NAME" "key" <key> "optional" bool */}}
{{- define "asynctask.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.amqp.existingSecret | quote }}
      key: {{ .key | quote }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/*
The history archive's environment of the operator or the gateway container (.for: "operator"
or "gateway"): its URL from the archive's Secret, the TLS mode and CA for libpq, the pool.
*/}}
{{- define "asynctask.archiveEnv" -}}
{{- $a := .root.Values.archive -}}
{{- if $a.enabled }}
- name: {{ ternary "ASYNCTASK_ARCHIVE_URL" "ASYNCTASK_GATEWAY_ARCHIVE_URL" (eq .for "operator") }}
  valueFrom:
    secretKeyRef:
      name: {{ $a.existingSecret | quote }}
      key: {{ ternary $a.operatorUrlKey $a.gatewayUrlKey (eq .for "operator") | quote }}
- name: PGSSLMODE
  value: {{ $a.tls.mode | quote }}
{{- if $a.tls.caSecret }}
- name: PGSSLROOTCERT
  value: /etc/asynctask/archive-ca/ca.crt
{{- end }}
{{- if eq .for "operator" }}
- name: ASYNCTASK_ARCHIVE_POOL_SIZE
  value: {{ $a.poolSize | quote }}
- name: ASYNCTASK_ARCHIVE_RETENTION_DAYS
  value: {{ $a.retentionDays | quote }}
- name: ASYNCTASK_ARCHIVE_TTL_WAIT_SECONDS
  value: {{ $a.ttlWaitSeconds | quote }}
{{- else }}
- name: ASYNCTASK_GATEWAY_ARCHIVE_POOL_SIZE
  value: {{ $a.gatewayPoolSize | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The archive's CA, mounted where PGSSLROOTCERT points (volumeMounts, then volumes). */}}
{{- define "asynctask.archiveCaMount" -}}
{{- if and .Values.archive.enabled .Values.archive.tls.caSecret }}
- name: archive-ca
  mountPath: /etc/asynctask/archive-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "asynctask.archiveCaVolume" -}}
{{- if and .Values.archive.enabled .Values.archive.tls.caSecret }}
- name: archive-ca
  secret:
    secretName: {{ .Values.archive.tls.caSecret | quote }}
{{- end }}
{{- end -}}

{{/*
Large payloads' environment of the operator or the gateway container (.for: "operator" or
"gateway"; docs/payloads.md): the store, the bucket and the prefix, and the credentials from
the payloads Secret. Nothing while payloads.endpoint is empty (offload off). Workers never
get any of it: the operator hands them presigned URLs.
*/}}
{{- define "asynctask.payloadsEnv" -}}
{{- $p := .root.Values.payloads -}}
{{- if $p.endpoint }}
{{- if not $p.bucket }}
{{- fail "payloads.bucket is required with payloads.endpoint (the bucket must exist; docs/payloads.md)" }}
{{- end }}
- name: ASYNCTASK_S3_ENDPOINT
  value: {{ $p.endpoint | quote }}
- name: ASYNCTASK_S3_BUCKET
  value: {{ $p.bucket | quote }}
- name: ASYNCTASK_S3_REGION
  value: {{ $p.region | quote }}
- name: ASYNCTASK_S3_PREFIX
  value: {{ $p.prefix | quote }}
- name: ASYNCTASK_S3_PATH_STYLE
  value: {{ $p.pathStyle | quote }}
- name: ASYNCTASK_S3_THRESHOLD_BYTES
  value: {{ $p.thresholdBytes | int64 | quote }}
{{- if eq .for "operator" }}
- name: ASYNCTASK_S3_URL_SECONDS
  value: {{ $p.urlSeconds | int64 | quote }}
- name: ASYNCTASK_S3_SWEEP_SECONDS
  value: {{ $p.sweepSeconds | int64 | quote }}
- name: ASYNCTASK_S3_GRACE_SECONDS
  value: {{ $p.graceSeconds | int64 | quote }}
{{- else }}
- name: ASYNCTASK_S3_PUBLIC_ENDPOINT
  value: {{ $p.publicEndpoint | default $p.endpoint | quote }}
- name: ASYNCTASK_GATEWAY_MAX_UPLOAD_BYTES
  value: {{ $p.maxUploadBytes | int64 | quote }}
{{- end }}
{{- if $p.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $p.existingSecret | quote }}
      key: {{ $p.accessKeyIdKey | quote }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $p.existingSecret | quote }}
      key: {{ $p.secretAccessKeyKey | quote }}
{{- end }}
{{- end }}
{{- end -}}
