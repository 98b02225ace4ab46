{{/* What every Airflow container shares: image, environment, mounts. */}}

{{/* The auth manager class, or the install fails: Airflow's default (SimpleAuthManager) keeps
generated passwords per api-server pod and suits a trial only. */}}
{{- define "domainllm.airflow.authManager" -}}
{{- $simple := "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager" -}}
{{- $manager := .Values.airflow.authManager | default "" -}}
{{- if hasKey .Values.airflow.extraEnv "AIRFLOW__CORE__AUTH_MANAGER" -}}
{{- fail "airflow.extraEnv.AIRFLOW__CORE__AUTH_MANAGER: set airflow.authManager instead (the chart checks it and passes it to every Airflow container and the migrate hook)" -}}
{{- end -}}
{{- if and (or (not $manager) (eq $manager $simple)) (not .Values.airflow.allowDevelopmentAuthManager) -}}
{{- fail (printf "airflow.authManager: set a production auth manager, e.g. --set airflow.authManager=airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager (the FAB provider is in the airflow image) or your own class; %s is for development only: to run it anyway set airflow.allowDevelopmentAuthManager=true" (ternary "Airflow's default SimpleAuthManager" "the SimpleAuthManager" (not $manager))) -}}
{{- end -}}
{{- $manager | default $simple -}}
{{- end -}}

{{- define "domainllm.airflow.authEnv" -}}
- name: AIRFLOW__CORE__AUTH_MANAGER
  value: {{ include "domainllm.airflow.authManager" . | quote }}
{{- end -}}

{{- define "domainllm.airflow.env" -}}
- name: AIRFLOW__CORE__EXECUTOR
  value: LocalExecutor
- name: AIRFLOW__CORE__PARALLELISM
  value: {{ .Values.airflow.parallelism | quote }}
- name: AIRFLOW__CORE__DEFAULT_TASK_RETRIES
  value: {{ .Values.airflow.defaultTaskRetries | quote }}
- name: DOMAINLLM_ROLLOUT_APPROVAL
  value: {{ ternary "1" "0" .Values.airflow.rolloutApproval.enabled | quote }}
- name: DOMAINLLM_ROLLOUT_APPROVAL_TIMEOUT_H
  value: {{ .Values.airflow.rolloutApproval.timeoutHours | quote }}
- name: AIRFLOW__CORE__EXECUTION_API_SERVER_URL
  value: {{ printf "http://%s-airflow-api:%v/execution/" (include "domainllm.fullname" .) .Values.airflow.apiServer.port | quote }}
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
  valueFrom:
    secretKeyRef: {name: {{ .Values.airflow.database.secretName }}, key: {{ .Values.airflow.database.secretKey }}}
- name: AIRFLOW__CORE__FERNET_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.airflow.keysSecretName }}, key: fernet-key}
- name: AIRFLOW__API_AUTH__JWT_SECRET
  valueFrom:
    secretKeyRef: {name: {{ .Values.airflow.keysSecretName }}, key: jwt-secret}
- name: AIRFLOW__API__SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.airflow.keysSecretName }}, key: api-secret-key}
{{ include "domainllm.airflow.authEnv" . }}
- name: AIRFLOW__LOGGING__BASE_LOG_FOLDER
  value: /opt/airflow/logs
- name: DOMAINLLM_HOME
  value: {{ .Values.home.mountPath | quote }}
- name: DOMAINLLM_SPEC
  value: {{ .Values.specs.default | quote }}
- name: MLFLOW_TRACKING_URI
  value: {{ printf "http://%s-mlflow:%v" (include "domainllm.fullname" .) .Values.mlflow.port | quote }}
{{- with .Values.mlflow.auth }}{{ if .enabled }}
- name: MLFLOW_TRACKING_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ .clientSecretName }}, key: MLFLOW_TRACKING_USERNAME}
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .clientSecretName }}, key: MLFLOW_TRACKING_PASSWORD}
{{- end }}{{ end }}
{{- range $name, $value := .Values.airflow.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "domainllm.airflow.envFrom" -}}
{{- with .Values.airflow.extraEnvFrom }}
envFrom:
{{- range . }}
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "domainllm.airflow.mounts" -}}
- {name: airflow-home, mountPath: /opt/airflow}
- {name: tmp, mountPath: /tmp}
- {name: home, mountPath: {{ .Values.home.mountPath }}}
- {name: specs, mountPath: {{ .Values.specs.mountPath }}, readOnly: true}
{{- end -}}

{{- define "domainllm.airflow.volumes" -}}
- {name: airflow-home, emptyDir: {}}
- {name: tmp, emptyDir: {}}
- name: home
  persistentVolumeClaim: {claimName: {{ include "domainllm.homeClaim" . }}}
- name: specs
  configMap: {name: {{ .Values.specs.configMapName }}}
{{- end -}}

{{/* A Deployment of one Airflow component: (dict "root" $ "component" "scheduler" "command" list "values" dict "probe" dict). */}}
{{- define "domainllm.airflow.deployment" -}}
{{- $root := .root -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "domainllm.fullname" $root }}-airflow-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "domainllm.labels" $root | nindent 4 }}
    app.kubernetes.io/component: airflow-{{ .component }}
  annotations:
    {{- include "domainllm.checkovSkips" (concat (list "secretsInEnv" "digest") (.skips | default list)) | nindent 4 }}
spec:
  replicas: {{ .replicas | default 1 }}
  {{- if eq (int (.replicas | default 1)) 1 }}
  strategy: {type: Recreate}
  {{- end }}
  selector:
    matchLabels:
      {{- include "domainllm.selector" (dict "root" $root "component" (printf "airflow-%s" .component)) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "domainllm.labels" $root | nindent 8 }}
        app.kubernetes.io/component: airflow-{{ .component }}
    spec:
      serviceAccountName: {{ $root.Values.serviceAccounts.airflow }}
      automountServiceAccountToken: {{ .apiAccess | default false }}
      securityContext:
        {{- include "domainllm.podSecurityContext" (dict "uid" 50000 "gid" 0) | nindent 8 }}
      {{- include "domainllm.pullSecrets" $root | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "domainllm.image" (dict "root" $root "role" "airflow") }}
          imagePullPolicy: {{ $root.Values.images.pullPolicy }}
          args: {{ toJson .command }}
          env:
            {{- include "domainllm.airflow.env" $root | nindent 12 }}
          {{- include "domainllm.airflow.envFrom" $root | nindent 10 }}
          {{- with .port }}
          ports:
            - {name: http, containerPort: {{ . }}}
          {{- end }}
          {{- toYaml .probes | nindent 10 }}
          resources:
            {{- include "domainllm.resources" .resources | nindent 12 }}
          securityContext:
            {{- include "domainllm.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            {{- include "domainllm.airflow.mounts" $root | nindent 12 }}
      volumes:
        {{- include "domainllm.airflow.volumes" $root | nindent 8 }}
{{- end -}}

{{- define "domainllm.airflow.jobCheck" -}}
{{- $check := dict "exec" (dict "command" (list "airflow" "jobs" "check" "--job-type" . "--local")) "periodSeconds" 60 "timeoutSeconds" 30 -}}
livenessProbe: {{ merge (dict "initialDelaySeconds" 60 "failureThreshold" 5) $check | toJson }}
readinessProbe: {{ merge (dict "initialDelaySeconds" 30) $check | toJson }}
{{- end -}}
