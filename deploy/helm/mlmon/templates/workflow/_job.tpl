{{/* One workflow CronJob. Argument: (dict "root" $ "name" .. "component" .. "container" ..
"args" (list ..) "deadline" N "configKey" .. "stateDir" .. "claim" .. "kms" bool "secret" ..
"golden" bool). */}}
{{- define "mlmon.workflowJob" -}}
{{- $v := .root.Values.workflow -}}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ .name }}
  namespace: {{ .root.Values.namespace }}
  labels:
    app.kubernetes.io/name: mlmon-workflow
    app.kubernetes.io/component: {{ .component }}
spec:
  schedule: {{ $v.schedule | quote }}
  timeZone: Etc/UTC
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 240
  successfulJobsHistoryLimit: 1
  failedJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 0
      activeDeadlineSeconds: {{ .deadline }}
      template:
        metadata:
          labels:
            app.kubernetes.io/name: mlmon-workflow
            app.kubernetes.io/component: {{ .component }}
        spec:
          serviceAccountName: mlmon-workflow
          automountServiceAccountToken: false
          enableServiceLinks: false
          restartPolicy: Never
          securityContext:
            {{- include "mlmon.podSecurity" .root | nindent 12 }}
          containers:
            - name: {{ .container }}
              image: {{ $v.image }}
              imagePullPolicy: IfNotPresent
              args: {{ toJson .args }}
              {{- $env := include "mlmon.lakeEnv" $v.lake }}
              {{- if or .kms $env }}
              env:
                {{- if .kms }}
                - name: MLMON_SSE_KMS_KEY_ID
                  valueFrom: {configMapKeyRef: {name: mlmon-server-lake, key: sse-kms-key-id}}
                {{- end }}
                {{- $env | nindent 16 }}
              {{- end }}
              envFrom:
                - secretRef: {name: {{ .secret }}}
              resources:
                {{- toYaml $v.resources | nindent 16 }}
              securityContext:
                {{- include "mlmon.containerSecurity" .root | nindent 16 }}
              volumeMounts:
                - {name: config, mountPath: /etc/mlmon, readOnly: true}
                {{- if .golden }}
                - {name: model-files, mountPath: /etc/mlmon/model-files, readOnly: true}
                {{- end }}
                - {name: state, mountPath: {{ .stateDir }}}
                - {name: tmp, mountPath: /tmp}
          volumes:
            - name: config
              configMap:
                name: mlmon-workflow-config
                defaultMode: 0440
                items: [{key: {{ .configKey }}, path: {{ .configKey }}}]
            {{- if .golden }}
            - name: model-files
              configMap:
                name: {{ $v.goldenConfigMap }}
                defaultMode: 0440
                items: [{key: golden.jsonl, path: golden.jsonl}]
            {{- end }}
            - name: state
              persistentVolumeClaim:
                claimName: {{ .claim }}
            - name: tmp
              emptyDir:
                sizeLimit: 256Mi
{{- end }}
