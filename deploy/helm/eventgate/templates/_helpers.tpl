{{- define "eventgate.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "eventgate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "eventgate.labels" -}}
{{ include "eventgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "eventgate.secretName" -}}
{{- if .Values.secret.existingSecret -}}
{{ .Values.secret.existingSecret }}
{{- else -}}
{{ include "eventgate.fullname" . }}
{{- end -}}
{{- end -}}

{{- define "eventgate.image" -}}
{{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end -}}

{{/* The environment every eventgate container gets: the secrets, then `env`. */}}
{{- define "eventgate.env" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "eventgate.secretName" . }}
      key: DATABASE_URL
- name: EVENTGATE_PLATFORM_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "eventgate.secretName" . }}
      key: EVENTGATE_PLATFORM_KEY
- name: EVENTGATE_SECRETS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "eventgate.secretName" . }}
      key: EVENTGATE_SECRETS_KEY
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A pod running `eventgate serve`; `relay` says whether it drives deliveries. */}}
{{- define "eventgate.podSpec" -}}
terminationGracePeriodSeconds: {{ .root.Values.terminationGracePeriodSeconds }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
containers:
  - name: eventgate
    image: {{ include "eventgate.image" .root }}
    imagePullPolicy: {{ .root.Values.image.pullPolicy }}
    args: ["serve"]
    env:
      {{- include "eventgate.env" .root | nindent 6 }}
      - name: EVENTGATE_RELAY
        value: {{ .relay | quote }}
    ports:
      - name: http
        containerPort: 8080
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
      periodSeconds: 10
    readinessProbe:
      httpGet:
        path: /readyz
        port: http
      periodSeconds: 5
    resources:
      {{- toYaml .root.Values.resources | nindent 6 }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: ["ALL"]
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      - name: data
        mountPath: /data
volumes:
  - name: tmp
    emptyDir: {}
  - name: data
    emptyDir: {}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
