{{/* Name of the release's objects: the release name, with "kubemail" unless it already says so. */}}
{{- define "kubemail.fullname" -}}
{{- if contains "kubemail" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-kubemail" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubemail.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubemail.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubemail.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kubemail.selectorLabels" -}}
app.kubernetes.io/name: kubemail
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubemail.labels" -}}
{{ include "kubemail.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* PodMonitor names and the Prometheus job they give their targets (namespace/name). */}}
{{- define "kubemail.mailServersMonitor" -}}
{{- printf "%s-mail-servers" (include "kubemail.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubemail.operatorMonitor" -}}
{{- printf "%s-operator" (include "kubemail.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels the operator puts on every mail server pod (controllers/builder Labels) except
app.kubernetes.io/instance, which is the MailDomain's name. test/envtest/chart checks them
against the builder.
*/}}
{{- define "kubemail.mailServerSelectorLabels" -}}
app.kubernetes.io/name: kubemail
app.kubernetes.io/component: mail-server
app.kubernetes.io/managed-by: kubemail-operator
{{- end -}}
