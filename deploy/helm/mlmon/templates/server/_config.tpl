{{/* server.yaml: the values' config with the chart's host, port, auth and audit.state_dir. */}}
{{- define "mlmon.serverConfig" -}}
{{- $auth := .Values.server.auth -}}
{{- if not (has $auth.mode (list "proxy" "token")) -}}
{{- fail (printf "server.auth.mode %q: use proxy or token (mode none serves every model to anyone who can connect, and the server listens on the pod's address)" $auth.mode) -}}
{{- end -}}
{{- $cfg := deepCopy .Values.server.config -}}
{{- range $k := list "host" "port" "auth" -}}
{{- if hasKey $cfg $k -}}
{{- fail (printf "server.config.%s is set by the chart; use server.auth for sign-in" $k) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "host" "0.0.0.0" -}}
{{- $_ := set $cfg "port" 8400 -}}
{{- if eq $auth.mode "proxy" -}}
{{- $_ := set $cfg "auth" (dict "mode" "proxy" "proxy" (dict "secret_file" "/run/mlmon/secrets/proxy-secret" "secret_header" $auth.secretHeader "user_header" $auth.userHeader "groups_header" $auth.groupsHeader)) -}}
{{- else -}}
{{- $_ := set $cfg "auth" (dict "mode" "token" "tokens_file" "/run/mlmon/secrets/tokens.yaml") -}}
{{- end -}}
{{- $audit := get $cfg "audit" | default dict -}}
{{- $_ := set $audit "state_dir" "/var/lib/mlmon-server" -}}
{{- $_ := set $cfg "audit" $audit -}}
{{- toYaml $cfg -}}
{{- end }}

{{/* The Secret the init container copies (0600) for the server: (list secretName key). */}}
{{- define "mlmon.serverSecret" -}}
{{- if eq .Values.server.auth.mode "proxy" -}}
{{- list .Values.server.auth.proxySecret "proxy-secret" | toJson -}}
{{- else -}}
{{- list .Values.server.auth.tokensSecret "tokens.yaml" | toJson -}}
{{- end -}}
{{- end }}
