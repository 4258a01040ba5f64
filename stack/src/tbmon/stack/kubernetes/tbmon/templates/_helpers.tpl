{{/* Labels of a component's objects: `include "tbmon.labels" (list $ "gateway")`. */}}
{{- define "tbmon.labels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: tbmon
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version }}
{{- end }}

{{/* The labels that select a component's pods (never change: selectors are immutable). */}}
{{- define "tbmon.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: tbmon
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* One of tbmon's own images: `include "tbmon.ownImage" (list $ "collector")`. */}}
{{- define "tbmon.ownImage" -}}
{{- $root := index . 0 -}}
{{- $image := index $root.Values.images (index . 1) -}}
{{- $registry := $root.Values.images.registry -}}
{{- printf "%s%s:%s" (ternary "" (printf "%s/" (trimSuffix "/" $registry)) (empty $registry)) $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end }}

{{/* A backend's official image: `include "tbmon.image" (list $ "thanos")`. */}}
{{- define "tbmon.image" -}}
{{- $image := index (index . 0).Values.images (index . 1) -}}
{{- printf "%s:%s" $image.image $image.tag -}}
{{- end }}

{{/* The pod-level settings every pod shares. Argument: (list $ uid), or (list $ uid component)
for a replicated workload, whose pods are then spread over nodes and zones where they can be. */}}
{{- define "tbmon.podSpec" -}}
{{- $root := index . 0 -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
  runAsUser: {{ index . 1 }}
  runAsGroup: {{ index . 1 }}
  fsGroup: {{ index . 1 }}
  fsGroupChangePolicy: OnRootMismatch
{{- if gt (len .) 2 }}
topologySpreadConstraints:
  {{- range $key := list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
  - maxSkew: 1
    topologyKey: {{ $key }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "tbmon.selector" (list $root (index $ 2)) | nindent 8 }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "tbmon.containerSecurity" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end }}

{{/* A StatefulSet peer's stable DNS name: (list $ "alertmanager" 0). */}}
{{- define "tbmon.peer" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%d.%s-headless.%s.svc.%s" (index . 1) (index . 2) (index . 1) $root.Release.Namespace $root.Values.clusterDomain -}}
{{- end }}

{{/* A Service's name in the cluster: (list $ "gateway"). */}}
{{- define "tbmon.service" -}}
{{- $root := index . 0 -}}
{{- printf "%s.%s.svc.%s" (index . 1) $root.Release.Namespace $root.Values.clusterDomain -}}
{{- end }}

{{/* A Secret key as an environment variable: (list $ "ENV_NAME" "KEY" optional). */}}
{{- define "tbmon.secretEnv" -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ (index . 0).Values.secrets.name }}
      key: {{ index . 2 }}
      optional: {{ index . 3 }}
{{- end }}

{{/* A HorizontalPodAutoscaler on CPU for a Deployment: (list $ "gateway" .Values.gateway), or
for another kind of workload: (list $ "processors" .Values.processors "StatefulSet"). */}}
{{- define "tbmon.hpa" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $scaling := (index . 2).autoscaling -}}
{{- $kind := "Deployment" -}}
{{- if gt (len .) 3 }}{{ $kind = index . 3 }}{{ end -}}
{{- if $scaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "tbmon.labels" (list $root $name) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: {{ $kind }}
    name: {{ $name }}
  minReplicas: {{ $scaling.minReplicas }}
  maxReplicas: {{ $scaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $scaling.targetCPUUtilizationPercentage }}
  behavior:
    # Scale in slowly: a leaving collector or host finishes what it holds first.
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
        - {type: Pods, value: 1, periodSeconds: 120}
{{- end }}
{{- end }}

{{/* A PodDisruptionBudget: (list $ "gateway" .Values.gateway). */}}
{{- define "tbmon.pdb" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "tbmon.labels" (list $root $name) | nindent 4 }}
spec:
  maxUnavailable: {{ (index . 2).pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "tbmon.selector" (list $root $name) | nindent 6 }}
{{- end }}

{{/* A Service: (list $ "name" "component" ports kind). ports: a list of {name, port}; kind: ""
(ClusterIP), "headless" (ready pods' addresses) or "peers" (headless, every pod's address). */}}
{{- define "tbmon.svc" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $component := index . 2 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "tbmon.labels" (list $root $component) | nindent 4 }}
spec:
  {{- if index . 4 }}
  clusterIP: None
  {{- end }}
  {{- if eq (index . 4) "peers" }}
  # Peers find each other before they are ready (gossip, hashring, storage nodes).
  publishNotReadyAddresses: true
  {{- end }}
  selector:
    {{- include "tbmon.selector" (list $root $component) | nindent 4 }}
  ports:
    {{- range (index . 3) }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
      {{- if hasPrefix "grpc" .name }}
      appProtocol: grpc
      {{- end }}
    {{- end }}
{{- end }}

{{/* Container ports from the same list. */}}
{{- define "tbmon.ports" -}}
ports:
  {{- range . }}
  - name: {{ .name }}
    containerPort: {{ .port }}
  {{- end }}
{{- end }}

{{/* An HTTP probe pair on a named port: (list "port-name" "/path"). */}}
{{- define "tbmon.probes" -}}
readinessProbe:
  httpGet: {path: {{ index . 1 }}, port: {{ index . 0 }}}
  periodSeconds: 10
  failureThreshold: 3
livenessProbe:
  httpGet: {path: {{ index . 1 }}, port: {{ index . 0 }}}
  initialDelaySeconds: 30
  periodSeconds: 20
  failureThreshold: 5
{{- end }}

{{/* A volumeClaimTemplate: (list $ "data" "10Gi"). */}}
{{- define "tbmon.claim" -}}
- metadata:
    name: {{ index . 1 }}
  spec:
    accessModes: [ReadWriteOnce]
    {{- with (index . 0).Values.persistence.storageClassName }}
    storageClassName: {{ . }}
    {{- end }}
    resources:
      requests:
        storage: {{ index . 2 }}
{{- end }}
