{{/*
The server pod, shared by the StatefulSet ("single") and the Deployment ("ha").
*/}}

{{/* A probe: an HTTP GET of `path` on the API port, or, with an empty path, a TCP
connection to it (the listener accepts: nothing else is asked of the process). */}}
{{- define "airlock.probe" -}}
{{- $p := index . 1 -}}
{{- if $p.path -}}
httpGet:
  path: {{ $p.path }}
  port: api
  scheme: {{ include "airlock.scheme" (index . 0) | upper }}
{{- else -}}
tcpSocket:
  port: api
{{- end }}
{{- with $p.initialDelaySeconds }}
initialDelaySeconds: {{ . }}
{{- end }}
periodSeconds: {{ $p.periodSeconds }}
timeoutSeconds: {{ $p.timeoutSeconds }}
failureThreshold: {{ $p.failureThreshold }}
{{- end -}}

{{- define "airlock.podTemplate" -}}
{{- $pg := eq .Values.storage.backend "postgresql" -}}
{{- $ha := eq .Values.profile "ha" -}}
metadata:
  labels:
    {{- include "airlock.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "airlock.config" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "airlock.serviceAccountName" . }}
  # No token is mounted automatically; with kubernetesAuth.enabled the volume
  # "kube-api-access" below mounts an expiring one for TokenReview, and nothing else.
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- include "airlock.podSecurityContext" . | nindent 4 }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.affinity }}
  affinity:
    {{- toYaml .Values.affinity | nindent 4 }}
  {{- else if $ha }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "airlock.selectorLabels" . | nindent 16 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: airlock
      image: {{ include "airlock.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command: ["airlock"]
      args: ["server", "--config", {{ include "airlock.configPath" . | quote }}]
      ports:
        - name: api
          containerPort: {{ .Values.config.port }}
          protocol: TCP
      env:
        {{- if $ha }}
        # The downward API: the pod's name (its audit directory) and IP (its address).
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        {{- end }}
        {{- with include "airlock.podApiAddr" . }}
        # What sys/leader and sys/ha-status report for this node: each replica its own.
        - name: AIRLOCK_API_ADDR
          value: {{ . | quote }}
        - name: AIRLOCK_CLUSTER_ADDR
          value: {{ . | quote }}
        {{- end }}
        - name: AIRLOCK_LOG_LEVEL
          value: {{ .Values.logLevel | quote }}
        - name: AIRLOCK_LOG_FORMAT
          value: {{ .Values.logFormat | quote }}
        # For `kubectl exec ... -- airlock status|operator init|operator unseal`.
        - name: AIRLOCK_ADDR
          value: "{{ include "airlock.scheme" . }}://127.0.0.1:{{ .Values.config.port }}"
        {{- if and .Values.tls.enabled .Values.tls.caKey }}
        - name: AIRLOCK_CACERT
          value: "{{ include "airlock.paths.tlsDir" . }}/{{ .Values.tls.caKey }}"
        {{- end }}
        - name: HOME
          value: {{ include "airlock.paths.home" . | quote }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      startupProbe:
        {{- include "airlock.probe" (list . (merge (dict "path" .Values.probes.liveness.path) .Values.probes.startup)) | nindent 8 }}
      livenessProbe:
        {{- include "airlock.probe" (list . .Values.probes.liveness) | nindent 8 }}
      readinessProbe:
        {{- include "airlock.probe" (list . .Values.probes.readiness) | nindent 8 }}
      securityContext:
        {{- include "airlock.containerSecurityContext" . | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: {{ include "airlock.paths.configDir" . }}
          readOnly: true
        {{- if $pg }}
        - name: pg-url
          mountPath: {{ include "airlock.paths.pgUrlDir" . }}
          readOnly: true
        {{- if or .Values.storage.postgresql.tls.caSecret.name .Values.storage.postgresql.tls.clientCertSecret.name }}
        - name: pg-tls
          mountPath: {{ include "airlock.paths.pgTlsDir" . }}
          readOnly: true
        {{- end }}
        {{- else }}
        - name: data
          mountPath: {{ include "airlock.paths.dataDir" . }}
        {{- end }}
        {{- if .Values.audit.enabled }}
        - name: audit
          mountPath: {{ .Values.audit.mountPath }}
          {{- if $ha }}
          # <volume>/<pod name>: pods sharing a claim never share a file.
          subPathExpr: $(POD_NAME)
          {{- end }}
        {{- end }}
        {{- if eq .Values.seal.type "keyFile" }}
        - name: unseal-key
          mountPath: {{ include "airlock.paths.unsealDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.tls.enabled }}
        - name: tls
          mountPath: {{ include "airlock.paths.tlsDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.kubernetesAuth.enabled }}
        - name: kube-api-access
          mountPath: /var/run/secrets/kubernetes.io/serviceaccount
          readOnly: true
        {{- end }}
        - name: home
          mountPath: {{ include "airlock.paths.home" . }}
  volumes:
    - name: config
      configMap:
        name: {{ include "airlock.fullname" . }}-config
    - name: home
      emptyDir:
        sizeLimit: 16Mi
    {{- if $pg }}
    - name: pg-url
      secret:
        secretName: {{ .Values.storage.postgresql.connectionUrlSecret.name }}
        defaultMode: 0440
        items:
          - key: {{ .Values.storage.postgresql.connectionUrlSecret.key }}
            path: connection_url
    {{- $t := .Values.storage.postgresql.tls }}
    {{- if or $t.caSecret.name $t.clientCertSecret.name }}
    - name: pg-tls
      projected:
        defaultMode: 0440
        sources:
          {{- if $t.caSecret.name }}
          - secret:
              name: {{ $t.caSecret.name }}
              items:
                - key: {{ $t.caSecret.key }}
                  path: ca.crt
          {{- end }}
          {{- if $t.clientCertSecret.name }}
          - secret:
              name: {{ $t.clientCertSecret.name }}
              items:
                - key: tls.crt
                  path: tls.crt
                - key: tls.key
                  path: tls.key
          {{- end }}
    {{- end }}
    {{- end }}
    {{- if and .Values.audit.enabled $ha }}
    - name: audit
      {{- if .Values.audit.existingClaim }}
      persistentVolumeClaim:
        claimName: {{ .Values.audit.existingClaim }}
      {{- else }}
      emptyDir:
        sizeLimit: {{ .Values.audit.emptyDirSizeLimit }}
      {{- end }}
    {{- else if and .Values.audit.enabled (not .Values.audit.persistence.enabled) }}
    - name: audit
      emptyDir:
        sizeLimit: {{ .Values.audit.emptyDirSizeLimit }}
    {{- end }}
    {{- if eq .Values.seal.type "keyFile" }}
    - name: unseal-key
      secret:
        secretName: {{ .Values.seal.keyFile.secretName }}
        defaultMode: 0440
        items:
          - key: {{ .Values.seal.keyFile.secretKey }}
            path: {{ .Values.seal.keyFile.secretKey }}
    {{- end }}
    {{- if .Values.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ .Values.tls.secretName }}
        defaultMode: 0440
    {{- end }}
    {{- if .Values.kubernetesAuth.enabled }}
    - name: kube-api-access
      projected:
        defaultMode: 0440
        sources:
          - serviceAccountToken:
              path: token
              expirationSeconds: {{ .Values.kubernetesAuth.tokenExpirationSeconds }}
          - configMap:
              name: kube-root-ca.crt
              items:
                - key: ca.crt
                  path: ca.crt
          - downwardAPI:
              items:
                - path: namespace
                  fieldRef:
                    fieldPath: metadata.namespace
    {{- end }}
{{- end -}}
