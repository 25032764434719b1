{{/*
Names, labels, checks and the TOML config. Paths inside the pod are fixed here, in one
place: the pod_view test rewrites exactly these.
*/}}

{{- define "airlock.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "airlock.fullname" -}}
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

{{- define "airlock.selectorLabels" -}}
app.kubernetes.io/name: {{ include "airlock.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "airlock.labels" -}}
{{ include "airlock.baseLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{/* Labels without the component. */}}
{{- define "airlock.baseLabels" -}}
app.kubernetes.io/name: {{ include "airlock.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: airlock
app.kubernetes.io/version: {{ .Chart.AppVersion | default "unknown" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "airlock.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "airlock.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference: repository@digest, or repository:tag (default appVersion). */}}
{{- define "airlock.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}

{{/* The broker sidecar's image (the Dockerfile's `broker` target). */}}
{{- define "airlock.brokerImage" -}}
{{- $i := .Values.brokerSidecar.image -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository ($i.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}

{{- define "airlock.scheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end -}}
{{- end -}}

{{/* In-pod paths. */}}
{{- define "airlock.paths.configDir" -}}/etc/airlock/config{{- end -}}
{{- define "airlock.paths.dataDir" -}}/var/lib/airlock{{- end -}}
{{- define "airlock.paths.tlsDir" -}}/etc/airlock/tls{{- end -}}
{{- define "airlock.paths.pgTlsDir" -}}/etc/airlock/pg-tls{{- end -}}
{{- define "airlock.paths.pgUrlDir" -}}/etc/airlock/pg-url{{- end -}}
{{- define "airlock.paths.unsealDir" -}}/run/secrets/airlock{{- end -}}
{{- define "airlock.paths.home" -}}/home/airlock{{- end -}}

{{/* The config file the server reads: the ConfigMap as mounted. */}}
{{- define "airlock.configPath" -}}
{{ include "airlock.paths.configDir" . }}/airlock.toml
{{- end -}}

{{/* What the "ha" profile's pods report as their address (sys/leader, sys/ha-status):
their own IP, from the downward API ($(POD_IP) is expanded by the kubelet). Empty when
config.apiAddr is set (it is in the config file then) or in "single" (the Service URL). */}}
{{- define "airlock.podApiAddr" -}}
{{- if and (eq .Values.profile "ha") (not .Values.config.apiAddr) -}}
{{- if eq .Values.config.podIPFamily "IPv6" -}}
{{ include "airlock.scheme" . }}://[$(POD_IP)]:{{ .Values.config.port }}
{{- else -}}
{{ include "airlock.scheme" . }}://$(POD_IP):{{ .Values.config.port }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Render-time checks: a wrong combination fails with a message saying what to set. */}}
{{- define "airlock.validate" -}}
{{- $p := .Values.profile -}}
{{- $b := .Values.storage.backend -}}
{{- if not (has $p (list "single" "ha")) -}}
{{- fail (printf "profile must be \"single\" or \"ha\", not %q" $p) -}}
{{- end -}}
{{- if not (has $b (list "sqlite" "postgresql")) -}}
{{- fail (printf "storage.backend must be \"sqlite\" or \"postgresql\", not %q" $b) -}}
{{- end -}}
{{- if and (eq $p "ha") (ne $b "postgresql") -}}
{{- fail "profile=ha needs storage.backend=postgresql: SQLite serves one node (a second process on the same file is refused). Set storage.backend=postgresql and storage.postgresql.connectionUrlSecret.name, or use profile=single." -}}
{{- end -}}
{{- if and (eq $p "ha") (lt (int .Values.replicas) 1) -}}
{{- fail "replicas must be at least 1" -}}
{{- end -}}
{{- if eq $b "postgresql" -}}
{{- if not .Values.storage.postgresql.connectionUrlSecret.name -}}
{{- fail "storage.backend=postgresql needs storage.postgresql.connectionUrlSecret.name: the Secret holding the connection string" -}}
{{- end -}}
{{- $t := .Values.storage.postgresql.tls -}}
{{- range $k := list "sslmode" "systemRoots" -}}
{{- if hasKey $t $k -}}
{{- fail (printf "storage.postgresql.tls.%s is gone: Airlock takes PostgreSQL's TLS options only from the connection string, which the chart no longer rewrites. Put them in the Secret %q itself (e.g. \"... sslmode=verify-full sslrootcert=%s/ca.crt\", or sslrootcert=system) and remove this value; see values.yaml, storage.postgresql" $k $.Values.storage.postgresql.connectionUrlSecret.name (include "airlock.paths.pgTlsDir" $)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.config.podIPFamily (list "IPv4" "IPv6")) -}}
{{- fail (printf "config.podIPFamily must be \"IPv4\" or \"IPv6\", not %q" .Values.config.podIPFamily) -}}
{{- end -}}
{{- if not (has .Values.seal.type (list "shamir" "keyFile")) -}}
{{- fail (printf "seal.type must be \"shamir\" or \"keyFile\", not %q" .Values.seal.type) -}}
{{- end -}}
{{- if and (eq .Values.seal.type "keyFile") (not .Values.seal.keyFile.secretName) -}}
{{- fail "seal.type=keyFile needs seal.keyFile.secretName: the Secret holding the unseal key (kubectl create secret generic airlock-unseal --from-literal=unseal-key=$(openssl rand -hex 32))" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled=true needs tls.secretName: a Secret with tls.crt and tls.key (e.g. a cert-manager Certificate's secretName)" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (not .Values.config.unauthenticatedMetricsAccess) (not .Values.serviceMonitor.tokenSecret.name) -}}
{{- fail "serviceMonitor.enabled=true: sys/metrics needs a token; set config.unauthenticatedMetricsAccess=true or serviceMonitor.tokenSecret.name" -}}
{{- end -}}
{{- end -}}

{{/* A TOML key = value line when the value is set (strings are quoted as JSON strings,
which TOML basic strings accept). */}}
{{- define "airlock.tomlKV" -}}
{{- $v := index . 1 -}}
{{- if not (kindIs "invalid" $v) -}}
{{- if kindIs "string" $v }}
{{ index . 0 }} = {{ $v | toJson }}
{{- else if and (kindIs "float64" $v) (ne (float64 (int64 $v)) $v) }}
{{ index . 0 }} = {{ $v }}
{{- else if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) }}
{{ index . 0 }} = {{ $v | int64 }}
{{- else }}
{{ index . 0 }} = {{ $v }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The server's TOML config. Nothing in it is secret and nothing differs between pods:
a pod's own address comes from AIRLOCK_API_ADDR/AIRLOCK_CLUSTER_ADDR ("ha"), the
PostgreSQL connection string from a mounted Secret (`connection_url_file`), each pod's
audit directory from a subPathExpr mount. */}}
{{- define "airlock.config" -}}
{{- $c := .Values.config -}}
{{- $ha := eq .Values.profile "ha" -}}
{{- $pg := eq .Values.storage.backend "postgresql" -}}
# Rendered by the airlock Helm chart ({{ .Chart.Name }}-{{ .Chart.Version }}). See the
# README's "Configuration reference"; every key is checked at start-up.
unauthenticated_metrics_access = {{ $c.unauthenticatedMetricsAccess }}
{{- include "airlock.tomlKV" (list "default_lease_ttl" $c.defaultLeaseTtl) }}
{{- include "airlock.tomlKV" (list "max_lease_ttl" $c.maxLeaseTtl) }}
{{- if $c.clusterName }}
cluster_name = {{ $c.clusterName | toJson }}
{{- end }}
{{- if $c.apiAddr }}
api_addr = {{ $c.apiAddr | toJson }}
{{- else if $ha }}
# api_addr and cluster_addr: AIRLOCK_API_ADDR and AIRLOCK_CLUSTER_ADDR, the pod's own IP.
{{- else }}
api_addr = "{{ include "airlock.scheme" . }}://{{ include "airlock.fullname" . }}.{{ .Release.Namespace }}.svc:{{ $c.port }}"
{{- end }}

[listener]
address = "{{ $c.listenAddress }}:{{ $c.port }}"
{{- if .Values.tls.enabled }}
tls_cert_file = "{{ include "airlock.paths.tlsDir" . }}/tls.crt"
tls_key_file = "{{ include "airlock.paths.tlsDir" . }}/tls.key"
{{- end }}
{{- $l := $c.listener }}
{{- include "airlock.tomlKV" (list "max_request_size" $l.maxRequestSize) }}
{{- include "airlock.tomlKV" (list "max_unauthenticated_request_size" $l.maxUnauthenticatedRequestSize) }}
{{- include "airlock.tomlKV" (list "max_connections" $l.maxConnections) }}
{{- include "airlock.tomlKV" (list "max_connections_per_address" $l.maxConnectionsPerAddress) }}
{{- include "airlock.tomlKV" (list "http_idle_timeout" $l.httpIdleTimeout) }}
{{- include "airlock.tomlKV" (list "http_read_header_timeout" $l.httpReadHeaderTimeout) }}
{{- include "airlock.tomlKV" (list "http_read_timeout" $l.httpReadTimeout) }}
{{- if eq .Values.seal.type "keyFile" }}

[seal]
# Auto-unseal with the key from the Secret {{ .Values.seal.keyFile.secretName | quote }}.
key_file = "{{ include "airlock.paths.unsealDir" . }}/{{ .Values.seal.keyFile.secretKey }}"
{{- end }}
{{- $a := $c.auth }}
{{- if or (not (kindIs "invalid" $a.loginRate)) (not (kindIs "invalid" $a.loginBurst)) (not (kindIs "invalid" $a.failedLoginRate)) (not (kindIs "invalid" $a.failedLoginBurst)) }}

[auth]
{{- include "airlock.tomlKV" (list "login_rate" $a.loginRate) }}
{{- include "airlock.tomlKV" (list "login_burst" $a.loginBurst) }}
{{- include "airlock.tomlKV" (list "failed_login_rate" $a.failedLoginRate) }}
{{- include "airlock.tomlKV" (list "failed_login_burst" $a.failedLoginBurst) }}
{{- end }}
{{- if or (not (kindIs "invalid" $c.events.maxEvents)) (not (kindIs "invalid" $c.events.maxAge)) }}

[events]
{{- include "airlock.tomlKV" (list "max_events" $c.events.maxEvents) }}
{{- include "airlock.tomlKV" (list "max_age" $c.events.maxAge) }}
{{- end }}
{{- if .Values.audit.enabled }}

[[audit]]
name = "file"
{{- if $ha }}
# On the volume: <pod name>/audit.log (the mount's subPathExpr), so pods never share a file.
{{- end }}
path = "{{ .Values.audit.mountPath }}/audit.log"
fsync = {{ .Values.audit.fsync }}
{{- end }}

[storage]
backend = {{ .Values.storage.backend | quote }}
{{- if $pg }}
table = {{ .Values.storage.postgresql.table | toJson }}
# The connection string (TLS options included) from the Secret
# {{ .Values.storage.postgresql.connectionUrlSecret.name | quote }}, mounted as a file.
connection_url_file = "{{ include "airlock.paths.pgUrlDir" . }}/connection_url"
{{- else }}
path = "{{ include "airlock.paths.dataDir" . }}/airlock.db"
sync = {{ .Values.storage.sqlite.sync | quote }}
{{- end }}
{{ end -}}

{{/* The hardened container security context every container of the chart uses. */}}
{{- define "airlock.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "airlock.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}
