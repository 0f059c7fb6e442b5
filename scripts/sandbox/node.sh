# shellcheck shell=bash
# node_manifest NAME CPUS MEMORY PODS VERSION: a kwok-managed (simulated) Node sized like the
# seed's Minikube
node_manifest() {
  local name=$1 cpus=$2 memory=$3 pods=$4 version=$5
  cat <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
    minikube.k8s.io/name: helmdeck
spec:
  # only what asks lands here: a namespace with the annotations in README "Which node runs a pod"
  taints:
  - {key: helmdeck.dev/simulated, value: "true", effect: NoSchedule}
status:
  addresses:
  - {type: InternalIP, address: 127.0.0.1}
  - {type: Hostname, address: $name}
  allocatable: {cpu: "$cpus", memory: "$memory", pods: "$pods", ephemeral-storage: 50Gi}
  capacity: {cpu: "$cpus", memory: "$memory", pods: "$pods", ephemeral-storage: 50Gi}
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    osImage: helmdeck sandbox (kwok)
    kubeletVersion: $version
    kubeProxyVersion: $version
YAML
}
