{{/*
Credential broker sidecar for agent pods: `airlock broker serve` on loopback holds the real
credentials; the agent container gets placeholders and a proxy (README "Credential broker").
Both containers use brokerSidecar.image (the Dockerfile's `broker` target): the init
container's script and the probes need a shell, which the server's image does not have.

Each helper takes this chart's context: `.` inside this chart, or `.Subcharts.airlock`
from a chart that depends on this one (with `airlock.server.enabled: false` when it only
wants the helpers):

  spec:
    initContainers:
      {{- include "airlock.brokerSidecarInit" .Subcharts.airlock | nindent 6 }}
    containers:
      - name: agent
        ...
        volumeMounts:
          - name: airlock-broker-share
            mountPath: /airlock-broker/share
            readOnly: true
      {{- include "airlock.brokerSidecar" .Subcharts.airlock | nindent 6 }}
    volumes:
      {{- include "airlock.brokerSidecarVolumes" .Subcharts.airlock | nindent 6 }}

The agent runs `. /airlock-broker/share/broker.env && exec python agent.py` (with
brokerSidecar.agent set): its environment then holds placeholders, the proxy variables
with a credential bound to that agent, and the CA variables, never a real value.
*/}}

{{- define "airlock.broker.addr" -}}
{{- .Values.brokerSidecar.airlockAddr | default (printf "%s://%s.%s.svc:%v" (include "airlock.scheme" .) (include "airlock.fullname" .) .Release.Namespace .Values.config.port) -}}
{{- end -}}

{{- define "airlock.broker.env" -}}
- name: AIRLOCK_ADDR
  value: {{ include "airlock.broker.addr" . | quote }}
{{- if .Values.brokerSidecar.airlockCaConfigMap.name }}
- name: AIRLOCK_CACERT
  value: /airlock-broker/airlock-ca/ca.crt
{{- end }}
- name: HOME
  value: /airlock-broker/home
{{- end -}}

{{- define "airlock.broker.commonMounts" -}}
- name: airlock-broker-home
  mountPath: /airlock-broker/home
  {{- if eq .Values.brokerSidecar.auth.method "tokenSecret" }}
  readOnly: true
  {{- end }}
{{- if .Values.brokerSidecar.airlockCaConfigMap.name }}
- name: airlock-broker-airlock-ca
  mountPath: /airlock-broker/airlock-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "airlock.broker.check" -}}
{{- $a := .Values.brokerSidecar.auth -}}
{{- if not (has $a.method (list "kubernetes" "tokenSecret")) -}}
{{- fail (printf "brokerSidecar.auth.method must be \"kubernetes\" or \"tokenSecret\", not %q" $a.method) -}}
{{- end -}}
{{- if and (eq $a.method "tokenSecret") (not $a.tokenSecret.name) -}}
{{- fail "brokerSidecar.auth.method=tokenSecret needs brokerSidecar.auth.tokenSecret.name" -}}
{{- end -}}
{{- if not (hasPrefix "127.0.0.1:" .Values.brokerSidecar.listen) -}}
{{- fail "brokerSidecar.listen must be 127.0.0.1:PORT (the broker listens on loopback only)" -}}
{{- end -}}
{{- end -}}

{{/* The init container: logs in (kubernetes auth) and, for brokerSidecar.agent, writes
the agent's environment and the CA bundle. Renders nothing when neither is needed. */}}
{{- define "airlock.brokerSidecarInit" -}}
{{- include "airlock.broker.check" . -}}
{{- $b := .Values.brokerSidecar -}}
{{- $kube := eq $b.auth.method "kubernetes" -}}
{{- if or $kube $b.agent -}}
- name: airlock-broker-login
  image: {{ include "airlock.brokerImage" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["/bin/sh", "-c"]
  args:
    - |
      set -eu
      umask 027
      {{- if $kube }}
      airlock login -method=kubernetes -path={{ $b.auth.mountPath }} role={{ $b.auth.role }} jwt=@/airlock-broker/sa/token
      {{- end }}
      {{- if $b.agent }}
      airlock broker env --agent {{ $b.agent }} --broker {{ $b.listen }} --ttl {{ $b.credentialTtl }} --ca-file /airlock-broker/share/broker-ca.pem > /airlock-broker/share/broker.env
      echo "environment of agent {{ $b.agent }} written to /airlock-broker/share/broker.env"
      {{- end }}
  env:
    {{- include "airlock.broker.env" . | nindent 4 }}
  securityContext:
    {{- include "airlock.containerSecurityContext" . | nindent 4 }}
  resources:
    {{- toYaml .Values.initResources | nindent 4 }}
  volumeMounts:
    {{- include "airlock.broker.commonMounts" . | nindent 4 }}
    - name: airlock-broker-share
      mountPath: /airlock-broker/share
    {{- if $kube }}
    - name: airlock-broker-sa
      mountPath: /airlock-broker/sa
      readOnly: true
    {{- end }}
{{- end }}
{{- end -}}

{{/* The sidecar container. */}}
{{- define "airlock.brokerSidecar" -}}
{{- include "airlock.broker.check" . -}}
{{- $b := .Values.brokerSidecar -}}
{{- $probe := dict "exec" (dict "command" (list "bash" "-c" (printf "exec 3<>/dev/tcp/%s" (replace ":" "/" $b.listen)))) -}}
- name: airlock-broker
  image: {{ include "airlock.brokerImage" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["airlock"]
  args:
    - broker
    - serve
    - --listen={{ $b.listen }}
    - --refresh={{ $b.refresh }}
    - --max-stale={{ $b.maxStale }}
    {{- if $b.profile }}
    - --profile=/airlock-broker/profile/airlock.toml
    {{- end }}
  env:
    {{- include "airlock.broker.env" . | nindent 4 }}
  # The proxy listens on loopback only: the probes connect from inside the container.
  readinessProbe:
    {{- toYaml $probe | nindent 4 }}
    periodSeconds: 10
    timeoutSeconds: 3
  livenessProbe:
    {{- toYaml $probe | nindent 4 }}
    initialDelaySeconds: 10
    periodSeconds: 20
    timeoutSeconds: 3
    failureThreshold: 3
  securityContext:
    {{- include "airlock.containerSecurityContext" . | nindent 4 }}
  resources:
    {{- toYaml $b.resources | nindent 4 }}
  volumeMounts:
    {{- include "airlock.broker.commonMounts" . | nindent 4 }}
    {{- if $b.profile }}
    - name: airlock-broker-profile
      mountPath: /airlock-broker/profile
      readOnly: true
    {{- end }}
{{- end -}}

{{/* The volumes both containers use. */}}
{{- define "airlock.brokerSidecarVolumes" -}}
{{- include "airlock.broker.check" . -}}
{{- $b := .Values.brokerSidecar -}}
{{- if eq $b.auth.method "tokenSecret" -}}
# The token as ~/.airlock-token of the broker (a file, never an environment variable).
- name: airlock-broker-home
  secret:
    secretName: {{ $b.auth.tokenSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $b.auth.tokenSecret.key }}
        path: .airlock-token
{{- else -}}
# ~/.airlock-token, written by the login init container; in memory.
- name: airlock-broker-home
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
# The pod's service-account token, for the login only.
- name: airlock-broker-sa
  projected:
    defaultMode: 0440
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 600
{{- end }}
# broker.env and broker-ca.pem for the agent container.
- name: airlock-broker-share
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- if $b.profile }}
- name: airlock-broker-profile
  configMap:
    name: {{ include "airlock.fullname" . }}-broker-profile
{{- end }}
{{- if $b.airlockCaConfigMap.name }}
- name: airlock-broker-airlock-ca
  configMap:
    name: {{ $b.airlockCaConfigMap.name }}
    items:
      - key: {{ $b.airlockCaConfigMap.key }}
        path: ca.crt
{{- end }}
{{- end -}}
