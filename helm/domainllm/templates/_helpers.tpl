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

{{/* checkov skips as annotations, each with its reason: (list "digest" ...). */}}
{{- define "domainllm.checkovSkips" -}}
{{- $reasons := dict
  "digest" "CKV_K8S_43=images are addressed by one tag set in images.tag; pin digests with immutable tags in the registry"
  "secretsInEnv" "CKV_K8S_35=Airflow, MLflow, vLLM and the gateway read these settings from the environment; the values come from Secrets by reference"
  "apiToken" "CKV_K8S_38=the scheduler runs the tasks, which create stage pods and jobs through the API, and the triggerer watches them while tasks are deferred (Role in rbac.yaml)" -}}
{{- range $i, $key := . }}
checkov.io/skip{{ add1 $i }}: {{ index $reasons $key | quote }}
{{- end }}
{{- end -}}

{{/* The gateway's log folder as a path inside the home volume (its subPath). */}}
{{- define "domainllm.gateway.logSubPath" -}}
{{- $home := trimSuffix "/" .Values.home.mountPath -}}
{{- $logs := trimSuffix "/" .Values.serving.gateway.logRoot -}}
{{- if not (hasPrefix (printf "%s/" $home) $logs) -}}
{{- fail (printf "serving.gateway.logRoot (%s) must be a folder under home.mountPath (%s): the gateway mounts only that folder of the home volume" $logs $home) -}}
{{- end -}}
{{- trimPrefix (printf "%s/" $home) $logs -}}
{{- end -}}

{{/* One NetworkPolicy egress rule: (dict "to" peers "ports" list "protocol" "TCP"); no peers: any address. */}}
{{- define "domainllm.egressRule" -}}
- ports:
    {{- range .ports }}
    - {port: {{ . }}, protocol: {{ $.protocol | default "TCP" }}}
    {{- end }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "domainllm.routesConfigMap" -}}
{{- .Values.serving.gateway.routesConfigMap | default (printf "%s-routes" (include "domainllm.fullname" .)) -}}
{{- end -}}
