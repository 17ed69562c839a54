{{/* The edge's pod spec body after restartPolicy: shared by the Deployment (`edge run`) and the
CronJob (`edge once`). Argument: (list root command). */}}
{{- define "mlmon.edgePod" -}}
{{- $ := index . 0 -}}
{{- $cmd := index . 1 -}}
{{- $metrics := $.Values.edge.config.metrics | default dict -}}
serviceAccountName: mlmon-edge
automountServiceAccountToken: {{ $.Values.edge.batch.enabled }}
enableServiceLinks: false
terminationGracePeriodSeconds: 30
securityContext:
  {{- include "mlmon.podSecurity" $ | nindent 2 }}
containers:
  - name: edge
    image: {{ $.Values.edge.image }}
    imagePullPolicy: IfNotPresent
    args: ["edge", {{ $cmd | quote }}, "--config", "/etc/mlmon/edge.yaml"]
    env:
      - name: MLMON_SSE_KMS_KEY_ID
        valueFrom: {configMapKeyRef: {name: mlmon-edge-lake, key: sse-kms-key-id}}
      {{- include "mlmon.lakeEnv" $.Values.edge.lake | nindent 6 }}
    {{- if eq $cmd "run" }}
    ports:
      - name: metrics
        containerPort: {{ $metrics.port | default 9108 }}
        protocol: TCP
    livenessProbe:
      exec:
        command: ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{{ $metrics.port | default 9108 }}/healthz', timeout=4)"]
      initialDelaySeconds: 20
      periodSeconds: 30
      timeoutSeconds: 5
    readinessProbe:
      exec:
        command: ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{{ $metrics.port | default 9108 }}/healthz', timeout=4)"]
      periodSeconds: 15
      timeoutSeconds: 5
    {{- end }}
    resources:
      {{- toYaml $.Values.edge.resources | nindent 6 }}
    securityContext:
      {{- include "mlmon.containerSecurity" $ | nindent 6 }}
    volumeMounts:
      - {name: config, mountPath: /etc/mlmon, readOnly: true}
      - {name: state, mountPath: /var/lib/mlmon}
      - {name: tmp, mountPath: /tmp}
volumes:
  - name: config
    projected:
      defaultMode: 0440
      sources:
        - configMap:
            name: mlmon-edge-config
            items: [{key: edge.yaml, path: edge.yaml}]
        - configMap:
            name: {{ $.Values.edge.modelFiles.configMap }}
            items:
              {{- range $.Values.edge.modelFiles.items }}
              - {key: {{ . }}, path: {{ . }}}
              {{- end }}
        - secret:
            name: {{ $.Values.edge.hmacSecret }}
            items: [{key: hmac-key, path: hmac.key}]
  - name: state
    persistentVolumeClaim:
      claimName: mlmon-edge-state
  - name: tmp
    emptyDir:
      sizeLimit: 256Mi
{{- end }}
