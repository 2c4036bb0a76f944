{{/* Names, labels and the checks every render runs. */}}

{{- define "llm-autoscale-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name when it already contains the chart name, else RELEASE-NAME (63 characters at most: it names the Service). */}}
{{- define "llm-autoscale-webhook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Selects the pods: the name only, as deploy/ has always done (a Deployment's selector cannot change). */}}
{{- define "llm-autoscale-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-autoscale-webhook.name" . }}
{{- end }}

{{- define "llm-autoscale-webhook.labels" -}}
{{ include "llm-autoscale-webhook.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: llm-autoscale
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llm-autoscale-webhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llm-autoscale-webhook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: with serviceAccount.create=false, name the existing ServiceAccount the pods run as" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The DNS name the API server checks the serving certificate against (clientConfig.service). */}}
{{- define "llm-autoscale-webhook.serviceDNSName" -}}
{{ include "llm-autoscale-webhook.fullname" . }}.{{ .Release.Namespace }}.svc
{{- end }}

{{- define "llm-autoscale-webhook.tlsSecretName" -}}
{{- if and (eq .Values.certificates.mode "provided") .Values.certificates.provided.secretName }}
{{- .Values.certificates.provided.secretName }}
{{- else }}
{{- include "llm-autoscale-webhook.fullname" . }}-tls
{{- end }}
{{- end }}

{{/* The serving Certificate that cert-manager's CA injector reads the caBundle from. */}}
{{- define "llm-autoscale-webhook.servingCertificate" -}}
{{ include "llm-autoscale-webhook.fullname" . }}-serving
{{- end }}

{{- define "llm-autoscale-webhook.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Whether the cluster runs native sidecars: init containers with restartPolicy Always, feature gate
SidecarContainers, alpha and off in 1.28, beta and on from 1.29 (k8s.io/kubernetes
pkg/features/kube_features.go). .Capabilities.KubeVersion is the cluster's on install and
upgrade; `helm template` assumes the version Helm was built for (scripts/e2e-tools.sh: 1.37)
unless given --kube-version.
*/}}
{{- define "llm-autoscale-webhook.nativeSidecars" -}}
{{- $v := toString .Values.config.nativeSidecars }}
{{- if eq $v "auto" }}
{{- semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version }}
{{- else }}
{{- $v }}
{{- end }}
{{- end }}

{{/*
Values that pass the schema but cannot work together are refused here, each with the value and
the fix. `fail` stops install, upgrade and template; in `helm lint` it is only logged (Helm
pkg/engine/engine.go, LintMode). The schema itself is checked first (pkg/chartutil/jsonschema.go).
*/}}
{{- define "llm-autoscale-webhook.validate" -}}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (regexMatch "^[0-9]+$" (toString $pdb.minAvailable)) (ge (int $pdb.minAvailable) (int .Values.replicaCount)) }}
{{- fail (printf "podDisruptionBudget.minAvailable=%d with replicaCount=%d: no pod could ever be evicted, so node drains would block. Raise replicaCount, lower minAvailable, or set podDisruptionBudget.enabled=false." (int $pdb.minAvailable) (int .Values.replicaCount)) }}
{{- end }}
{{- $native := include "llm-autoscale-webhook.nativeSidecars" . }}
{{- if and (eq .Values.config.sidecarMode "native") (ne $native "true") }}
{{- fail (printf "config.sidecarMode=native needs native sidecars (Kubernetes 1.29 or newer; this cluster: %s, config.nativeSidecars=%v). Use sidecarMode auto or container." .Capabilities.KubeVersion.Version .Values.config.nativeSidecars) }}
{{- end }}
{{- with .Values.config.kedaVersion }}
{{- if semverCompare "<2.14.0" . }}
{{- fail (printf "config.kedaVersion=%s: the oldest KEDA release supported is 2.14.0. Upgrade KEDA, then set the release you run." .) }}
{{- end }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (eq .Values.certificates.mode "provided") (not .Values.serviceMonitor.tlsConfig) }}
{{- fail "serviceMonitor.enabled with certificates.mode=provided: the provided Secret has no ca.crt to verify the scrape with. Set serviceMonitor.tlsConfig (e.g. ca from a Secret or ConfigMap holding the CA, serverName the Service's DNS name)." }}
{{- end }}
{{- if and (eq .Values.certificates.mode "provided") .Values.certificates.provided.caBundle }}
{{- $pem := b64dec .Values.certificates.provided.caBundle }}
{{- if not (contains "-----BEGIN CERTIFICATE-----" $pem) }}
{{- fail "certificates.provided.caBundle is not the base64 of a PEM certificate. Use the caBundle printed by `llm-autoscale-webhook certs`, or `base64 -w0 ca.crt`." }}
{{- end }}
{{- end }}
{{- if and .Values.doctor.bindServiceAccount (not .Values.doctor.clusterRole) }}
{{- fail "doctor.bindServiceAccount needs doctor.clusterRole=true (the ClusterRole it binds)." }}
{{- end }}
{{- include "llm-autoscale-webhook.validateScaler" . }}
{{- end }}

{{/* The built-in scaler's values that pass the schema but cannot work. */}}
{{- define "llm-autoscale-webhook.validateScaler" -}}
{{- $s := .Values.scaler }}
{{- if $s.enabled }}
{{- $pdb := $s.podDisruptionBudget }}
{{- if and $pdb.enabled (regexMatch "^[0-9]+$" (toString $pdb.minAvailable)) (ge (int $pdb.minAvailable) (int $s.replicas)) }}
{{- fail (printf "scaler.podDisruptionBudget.minAvailable=%d with scaler.replicas=%d: no scaler pod could ever be evicted, so node drains would block. Raise scaler.replicas, lower scaler.podDisruptionBudget.minAvailable, or set scaler.podDisruptionBudget.enabled=false." (int $pdb.minAvailable) (int $s.replicas)) }}
{{- end }}
{{- if and $s.trustKey.enabled (not .Values.rbac.create) }}
{{- fail "scaler.trustKey.enabled with rbac.create=false: the reconciler could not write the namespace token Secrets the sidecars present, so no builtin workload would ever be stored. Set rbac.create=true, or scaler.trustKey.enabled=false (no token check)." }}
{{- end }}
{{- if and $s.tls.secretName (not .Values.rbac.create) }}
{{- fail (printf "scaler.tls.secretName=%s with rbac.create=false: the reconciler could not write the scaler's CA into the namespaces' Secret llm-autoscale-scaler-token, and the sidecars wait for it. Set rbac.create=true, or leave scaler.tls.secretName empty (plain TCP)." $s.tls.secretName) }}
{{- end }}
{{- with $s.trustKey.previousSecretName }}
{{- if not $s.trustKey.enabled }}
{{- fail (printf "scaler.trustKey.previousSecretName=%s with scaler.trustKey.enabled=false: no token is checked, so there is no key to rotate. Leave previousSecretName empty, or set scaler.trustKey.enabled=true." .) }}
{{- end }}
{{- if eq . $s.trustKey.secretName }}
{{- fail (printf "scaler.trustKey.previousSecretName=%s is also scaler.trustKey.secretName: a rotation needs the new key and the previous one in two Secrets. Put the new key in another Secret and name it in scaler.trustKey.secretName, the old one in previousSecretName." .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The built-in scaler's name: FULLNAME with its "-webhook" suffix replaced by "-scaler" (llm-autoscale-scaler for the default release, the binary's --builtin-* defaults). */}}
{{- define "llm-autoscale-webhook.scalerName" -}}
{{- printf "%s-scaler" (include "llm-autoscale-webhook.fullname" . | trunc 48 | trimSuffix "-" | trimSuffix "-webhook") }}
{{- end }}

{{/* Selects the scaler's pods (as deploy/scaler/ always has). */}}
{{- define "llm-autoscale-webhook.scalerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-autoscale-webhook.scalerName" . }}
{{- end }}

{{- define "llm-autoscale-webhook.scalerLabels" -}}
{{ include "llm-autoscale-webhook.scalerSelectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: scaler
app.kubernetes.io/part-of: llm-autoscale
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The scaler's Service address, HOST:PORT, as the sidecars and KEDA reach it. */}}
{{- define "llm-autoscale-webhook.scalerAddress" -}}
{{ include "llm-autoscale-webhook.scalerName" .root }}.{{ .root.Release.Namespace }}.svc:{{ .port }}
{{- end }}

{{/* The scaler's image: the webhook's (same binary) unless scaler.image says otherwise. */}}
{{- define "llm-autoscale-webhook.scalerImage" -}}
{{- $i := .Values.scaler.image }}
{{- if not $i.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) $i.tag }}
{{- $digest := default .Values.image.digest $i.digest }}
{{- if $digest }}
{{- printf "%s@%s" .Values.image.repository $digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- else if $i.digest }}
{{- printf "%s@%s" $i.repository $i.digest }}
{{- else }}
{{- printf "%s:%s" $i.repository (default .Chart.AppVersion $i.tag) }}
{{- end }}
{{- end }}

{{/* clientConfig of a webhook: the Service, a path, and the caBundle when the chart knows it. Argument: dict root, path, caBundle. */}}
{{- define "llm-autoscale-webhook.clientConfig" -}}
service:
  name: {{ include "llm-autoscale-webhook.fullname" .root }}
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
  port: {{ .root.Values.service.port }}
{{- with .caBundle }}
caBundle: {{ . }}
{{- end }}
{{- end }}

{{/*
namespaceSelector and objectSelector of every webhook: never the release namespace nor
webhook.excludeNamespaces, never a namespace or object labelled OPT-OUT-LABEL=disabled, and the
user's own conditions on top.
*/}}
{{- define "llm-autoscale-webhook.selectors" -}}
{{- $w := .Values.webhook }}
{{- $excluded := prepend $w.excludeNamespaces .Release.Namespace | uniq }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ toJson $excluded }}
    {{- with $w.optOutLabel }}
    - key: {{ . }}
      operator: NotIn
      values: ["disabled"]
    {{- end }}
    {{- with $w.namespaceSelector.matchExpressions }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $w.namespaceSelector.matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- if or $w.optOutLabel $w.objectSelector }}
objectSelector:
  {{- if or $w.optOutLabel $w.objectSelector.matchExpressions }}
  matchExpressions:
    {{- with $w.optOutLabel }}
    - key: {{ . }}
      operator: NotIn
      values: ["disabled"]
    {{- end }}
    {{- with $w.objectSelector.matchExpressions }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with $w.objectSelector.matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
