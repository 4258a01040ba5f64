{{/*
The collector configs of the two tiers, derived at render time from tbmon/collector/config.yaml
(files/otel-collector/config.yaml is a link to it), as the scaled topology derives them
(docs/scaling.md, tbmon/stack/scaled_render.py):

- the exporter that feeds the processors host (endpoint ${env:TBMON_PROCESSORS_ENDPOINT}) is the
  seam between the tiers;
- an agent keeps only the pipelines that end in it, and swaps it for a load_balancing exporter over
  the gateways; a gateway keeps the whole config and swaps it for one over the processors hosts;
- the swapped-in exporter keeps the original's timeout, retries and (persistent) sending queue in
  front of the routing; each endpoint's OTLP sub-exporter keeps the transport settings, with an
  in-memory queue and retries without a deadline, so one endpoint down holds back only its share;
- a batch processor's batching moves into its pipelines' persistent queues (acknowledged data is
  on disk before it is batched; a no-op once config.yaml batches in its queues, issue 13);
- a gateway's receivers that agents send to accept the largest gRPC message any receiver of
  config.yaml accepts (what an agent's batch holds).

Every other ${env:...} reference stays for the collector to resolve from the pod's environment.
Argument: (list $ "agent"|"gateway").
*/}}
{{- define "tbmon.collectorConfig" -}}
{{- $root := index . 0 -}}
{{- $role := index . 1 -}}
{{- $source := "files/otel-collector/config.yaml" -}}
{{- $doc := $root.Files.Get $source | fromYaml -}}
{{- if hasKey $doc "Error" }}{{ fail (printf "%s: %s" $source $doc.Error) }}{{ end -}}
{{- $feeds := list -}}
{{- range $name, $config := $doc.exporters -}}
{{- if contains "TBMON_PROCESSORS_ENDPOINT" (toString (get (default (dict) $config) "endpoint")) -}}
{{- $feeds = append $feeds $name -}}
{{- end -}}
{{- end -}}
{{- if not $feeds -}}
{{- fail (printf "%s: no exporter sends to ${env:TBMON_PROCESSORS_ENDPOINT}; the tiers split the pipeline there" $source) -}}
{{- end -}}
{{- $next := ternary (dict "service" "gateway" "port" 4317) (dict "service" "processors" "port" 4319) (eq $role "agent") -}}
{{- $resolver := dict -}}
{{- if eq $root.Values.collector.resolver "k8s" -}}
{{- $resolver = dict "k8s" (dict "service" (printf "%s.%s" $next.service $root.Release.Namespace) "ports" (list $next.port)) -}}
{{- else if eq $root.Values.collector.resolver "dns" -}}
{{- $resolver = dict "dns" (dict "hostname" (include "tbmon.service" (list $root (printf "%s-headless" $next.service))) "port" (toString $next.port)) -}}
{{- else -}}
{{- fail (printf "collector.resolver must be k8s or dns, not %q" $root.Values.collector.resolver) -}}
{{- end -}}
{{- $kept := dict -}}
{{- $fedReceivers := list -}}
{{- range $name, $pipeline := $doc.service.pipelines -}}
{{- $fed := list -}}
{{- range $pipeline.exporters }}{{ if has . $feeds }}{{ $fed = append $fed . }}{{ end }}{{ end -}}
{{- if not $fed -}}
{{- if eq $role "gateway" }}{{ $_ := set $kept $name $pipeline }}{{ end -}}
{{- else -}}
{{- $fedReceivers = concat $fedReceivers $pipeline.receivers -}}
{{- $signal := first (splitList "/" $name) -}}
{{- $balanced := printf "load_balancing/%s" $signal -}}
{{- $feed := deepCopy (get $doc.exporters (first $fed)) -}}
{{- $exporter := dict "routing_key" (get $root.Values.collector.routingKeys $signal) "resolver" $resolver -}}
{{- range list "timeout" "retry_on_failure" "sending_queue" -}}
{{- if hasKey $feed . }}{{ $_ := set $exporter . (get $feed .) }}{{ $_ := unset $feed . }}{{ end -}}
{{- end -}}
{{- $_ := unset $feed "endpoint" -}}
{{- $queue := dict "enabled" true -}}
{{- range $key, $value := (get $exporter "sending_queue" | default dict) -}}
{{- if not (has $key (list "enabled" "storage" "batch" "sizer" "block_on_overflow" "wait_for_result")) }}{{ $_ := set $queue $key $value }}{{ end -}}
{{- end -}}
{{- $_ := set $feed "sending_queue" $queue -}}
{{- $retry := deepCopy (get $exporter "retry_on_failure" | default (dict)) -}}
{{- $_ := set $retry "enabled" true -}}
{{- $_ := set $retry "max_elapsed_time" "0s" -}}
{{- $_ := set $feed "retry_on_failure" $retry -}}
{{- $_ := set $exporter "protocol" (dict "otlp" $feed) -}}
{{- $_ := set $doc.exporters $balanced $exporter -}}
{{- $exporters := list -}}
{{- range $pipeline.exporters -}}
{{- if eq . (first $fed) }}{{ $exporters = append $exporters $balanced }}{{ else if not (has . $fed) }}{{ $exporters = append $exporters . }}{{ end -}}
{{- end -}}
{{- $_ := set $pipeline "exporters" $exporters -}}
{{- $_ := set $kept $name $pipeline -}}
{{- end -}}
{{- end -}}
{{- $_ := set $doc.service "pipelines" $kept -}}
{{- /* Batching from batch processors into the pipelines' persistent queues. */ -}}
{{- range $name, $pipeline := $kept -}}
{{- $batches := list -}}
{{- range ($pipeline.processors | default list) }}{{ if eq (first (splitList "/" .)) "batch" }}{{ $batches = append $batches . }}{{ end }}{{ end -}}
{{- if $batches -}}
{{- $batch := get $doc.processors (last $batches) | default dict -}}
{{- $left := list -}}
{{- range $pipeline.processors }}{{ if not (has . $batches) }}{{ $left = append $left . }}{{ end }}{{ end -}}
{{- $_ := set $pipeline "processors" $left -}}
{{- range $pipeline.exporters -}}
{{- $queue := get (get $doc.exporters . | default dict) "sending_queue" -}}
{{- if and (kindIs "map" $queue) (not (hasKey $queue "batch")) -}}
{{- $size := $batch.send_batch_size | default 8192 -}}
{{- $_ := set $queue "batch" (dict "flush_timeout" ($batch.timeout | default "200ms") "sizer" "items" "min_size" $size "max_size" ($batch.send_batch_max_size | default $size)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* A gateway's receivers from the agents accept the largest message config.yaml accepts. */ -}}
{{- if eq $role "gateway" -}}
{{- $limit := 0 -}}
{{- range $doc.receivers }}{{ with dig "protocols" "grpc" "max_recv_msg_size_mib" 0 (. | default dict) }}{{ $limit = max $limit . }}{{ end }}{{ end -}}
{{- range $name := uniq $fedReceivers -}}
{{- $grpc := dig "protocols" "grpc" nil (get $doc.receivers $name | default dict) -}}
{{- if and $limit (kindIs "map" $grpc) }}{{ $_ := set $grpc "max_recv_msg_size_mib" $limit }}{{ end -}}
{{- end -}}
{{- end -}}
{{- /* Drop the receivers, processors, exporters and connectors no pipeline uses. */ -}}
{{- $used := list -}}
{{- range $kept }}{{ $used = concat $used (.receivers | default list) (.processors | default list) (.exporters | default list) }}{{ end -}}
{{- range $kind := list "receivers" "processors" "exporters" "connectors" -}}
{{- if hasKey $doc $kind -}}
{{- $section := dict -}}
{{- range $key, $value := get $doc $kind }}{{ if has $key $used }}{{ $_ := set $section $key $value }}{{ end }}{{ end -}}
{{- if $section }}{{ $_ := set $doc $kind $section }}{{ else }}{{ $_ := unset $doc $kind }}{{ end -}}
{{- end -}}
{{- end -}}
{{- toYaml $doc -}}
{{- end }}

{{/* The environment both collector tiers read (the TBMON_* variables of config.yaml). */}}
{{- define "tbmon.collectorEnv" -}}
{{- $root := index . 0 -}}
{{- $tier := index . 1 -}}
- name: TBMON_BIND_HOST
  value: 0.0.0.0
- name: TBMON_COLLECTOR_STORAGE_DIR
  value: /var/lib/otelcol/queue
- name: TBMON_COLLECTOR_MEMORY_LIMIT_MIB
  value: {{ $tier.memoryLimitMiB | quote }}
- name: TBMON_COLLECTOR_MEMORY_SPIKE_MIB
  value: {{ div $tier.memoryLimitMiB 4 | quote }}
- name: TBMON_COLLECTOR_QUEUE_SIZE
  value: {{ $root.Values.collector.queueSize | quote }}
- name: TBMON_COLLECTOR_LOG_LEVEL
  value: {{ $root.Values.collector.logLevel | quote }}
- name: GOMEMLIMIT
  value: {{ printf "%dMiB" (int $tier.memoryLimitMiB) }}
{{- end }}
