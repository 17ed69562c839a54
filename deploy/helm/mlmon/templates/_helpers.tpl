{{/* The container securityContext every mlmon container runs with (restricted profile, and a
read-only root filesystem). */}}
{{- define "mlmon.containerSecurity" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The pod securityContext of the mlmon images (UID 10001). */}}
{{- define "mlmon.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The lake environment after MLMON_SSE_KMS_KEY_ID: the lake URI, the S3 endpoint, the region
and static keys from a Secret (never their values). Argument: a lake values map. */}}
{{- define "mlmon.lakeEnv" -}}
{{- if .uri }}
- {name: MLMON_LAKE, value: {{ .uri | quote }}}
{{- end }}
{{- if .s3Endpoint }}
- {name: MLMON_S3_ENDPOINT, value: {{ .s3Endpoint | quote }}}
{{- end }}
{{- if .region }}
- {name: AWS_REGION, value: {{ .region }}}
{{- end }}
{{- if .credentialsSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ .credentialsSecret }}, key: access-key-id}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ .credentialsSecret }}, key: secret-access-key}}
{{- end }}
{{- end }}

{{/* A NetworkPolicy peer: pods with these labels in that namespace. Argument: (list ns labels). */}}
{{- define "mlmon.podsPeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ index . 0 }}
  podSelector:
    matchLabels:
      {{- toYaml (index . 1) | nindent 6 }}
{{- end }}

{{/* The cluster DNS egress rule. Argument: the root context. */}}
{{- define "mlmon.dnsEgress" -}}
- to:
    {{- include "mlmon.podsPeer" (list .Values.dns.namespace .Values.dns.podLabels) | nindent 4 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end }}
