{{/* Names, labels and the pieces every pod shares. */}}

{{- define "domainllm.fullname" -}}
{{- printf "%s-domainllm" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "domainllm.labels" -}}
app.kubernetes.io/name: domainllm
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "domainllm.selector" -}}
app.kubernetes.io/name: domainllm
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "domainllm.image" -}}
{{- printf "%s/%s/%s:%s" .root.Values.images.registry .root.Values.images.repository .role .root.Values.images.tag -}}
{{- end -}}

{{- define "domainllm.homeClaim" -}}
{{- default (printf "%s-home" (include "domainllm.fullname" .)) .Values.home.existingClaim -}}
{{- end -}}

{{/* Requests equal to limits: Guaranteed QoS. */}}
{{- define "domainllm.resources" -}}
requests:
  cpu: {{ .cpu | quote }}
  memory: {{ .memory | quote }}
limits:
  cpu: {{ .cpu | quote }}
  memory: {{ .memory | quote }}
{{- end -}}

{{- define "domainllm.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid }}
fsGroup: {{ .gid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "domainllm.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "domainllm.pullSecrets" -}}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}
