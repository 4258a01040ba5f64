{{/*
Prometheus's config for the HA pair, derived from tbmon/stack/prometheus/prometheus.yml (a link in
files/): the same jobs, with each static target found as pods (values prometheus.targets), an
external label `replica` per pod, both Alertmanagers, alerts without `replica` (so both Prometheus
send Alertmanager the same alert), and remote write into the metrics store.
*/}}
{{- define "tbmon.prometheusConfig" -}}
{{- $root := . -}}
{{- $source := "files/prometheus/prometheus.yml" -}}
{{- $doc := .Files.Get $source | fromYaml -}}
{{- if hasKey $doc "Error" }}{{ fail (printf "%s: %s" $source $doc.Error) }}{{ end -}}
{{- $jobs := list -}}
{{- range $job := $doc.scrape_configs -}}
{{- $components := list -}}
{{- $ports := list -}}
{{- range $static := $job.static_configs -}}
{{- range $target := $static.targets -}}
{{- with get $root.Values.prometheus.targets $target -}}
{{- $components = concat $components .components -}}
{{- $ports = append $ports .port -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $components -}}
{{- $job = omit $job "static_configs" -}}
{{- $_ := set $job "kubernetes_sd_configs" (list (dict "role" "pod" "namespaces" (dict "names" (list $root.Release.Namespace)))) -}}
{{- $relabel := list
  (dict "action" "keep" "source_labels" (list "__meta_kubernetes_pod_label_app_kubernetes_io_instance") "regex" $root.Release.Name)
  (dict "action" "keep" "source_labels" (list "__meta_kubernetes_pod_label_app_kubernetes_io_component") "regex" (join "|" (uniq $components)))
  (dict "action" "keep" "source_labels" (list "__meta_kubernetes_pod_container_port_name") "regex" (join "|" (uniq $ports)))
  (dict "action" "replace" "source_labels" (list "__meta_kubernetes_pod_name") "target_label" "pod")
  (dict "action" "replace" "source_labels" (list "__meta_kubernetes_pod_label_app_kubernetes_io_component") "target_label" "component")
-}}
{{- $_ := set $job "relabel_configs" (concat $relabel ($job.relabel_configs | default list)) -}}
{{- $jobs = append $jobs $job -}}
{{- end -}}
{{- end -}}
{{- $_ := set $doc "scrape_configs" $jobs -}}
{{- $global := $doc.global | default dict -}}
{{- $labels := $global.external_labels | default dict -}}
{{- $_ := set $labels "replica" "${POD_NAME}" -}}
{{- $_ := set $global "external_labels" $labels -}}
{{- $_ := set $doc "global" $global -}}
{{- $alertmanagers := list -}}
{{- range $n := until (int .Values.alertmanager.replicas) -}}
{{- $alertmanagers = append $alertmanagers (printf "%s:9093" (include "tbmon.peer" (list $root "alertmanager" $n))) -}}
{{- end -}}
{{- $_ := set $doc "alerting" (dict
  "alert_relabel_configs" (list (dict "action" "labeldrop" "regex" "replica"))
  "alertmanagers" (list (dict "static_configs" (list (dict "targets" $alertmanagers))))) -}}
{{- $_ := set $doc "remote_write" (list (dict "url" (printf "http://%s:19291/api/v1/receive" (include "tbmon.service" (list $root "metrics-store"))))) -}}
{{- toYaml $doc -}}
{{- end }}

{{/*
Jaeger v2's store, collector and query roles, derived from tbmon/stack/jaeger/config.yaml as the scaled
topology derives them: the store runs the single-node storage backend behind the remote_storage
extension (its gRPC API for reads, its OTLP receiver for writes); the collector writes and the
query role reads through the grpc backend on it. Argument: (list $ "store"|"collector"|"query").
*/}}
{{- define "tbmon.jaegerConfig" -}}
{{- $root := index . 0 -}}
{{- $role := index . 1 -}}
{{- $source := "files/jaeger/config.yaml" -}}
{{- $doc := $root.Files.Get $source | fromYaml -}}
{{- if hasKey $doc "Error" }}{{ fail (printf "%s: %s" $source $doc.Error) }}{{ end -}}
{{- $extensions := $doc.extensions -}}
{{- $service := $doc.service -}}
{{- $backend := $extensions.jaeger_query.storage.traces -}}
{{- $store := include "tbmon.peer" (list $root "traces-store" 0) -}}
{{- $remote := dict "endpoint" (printf "%s:17271" $store) "tls" (dict "insecure" true) -}}
{{- if eq $role "store" -}}
{{- $_ := unset $extensions "jaeger_query" -}}
{{- $_ := set $extensions "remote_storage" (dict "endpoint" "${env:TBMON_BIND_HOST:-127.0.0.1}:17271" "storage" $backend) -}}
{{- $list := list -}}
{{- range $service.extensions }}{{ $list = append $list (ternary "remote_storage" . (eq . "jaeger_query")) }}{{ end -}}
{{- $_ := set $service "extensions" $list -}}
{{- else if eq $role "collector" -}}
{{- $_ := set $remote "writer" (dict "endpoint" (printf "%s:14317" $store) "tls" (dict "insecure" true)) -}}
{{- $_ := set $extensions.jaeger_storage "backends" (dict $backend (dict "grpc" $remote)) -}}
{{- $_ := unset $extensions "jaeger_query" -}}
{{- $_ := set $service "extensions" (without $service.extensions "jaeger_query") -}}
{{- else -}}
{{- $_ := set $extensions.jaeger_storage "backends" (dict $backend (dict "grpc" $remote)) -}}
{{- $_ := set $doc "receivers" (dict "nop" nil) -}}
{{- $_ := set $doc "exporters" (dict "nop" nil) -}}
{{- $_ := unset $doc "processors" -}}
{{- $_ := set $service "pipelines" (dict "traces" (dict "receivers" (list "nop") "exporters" (list "nop"))) -}}
{{- end -}}
{{- toYaml $doc -}}
{{- end }}
