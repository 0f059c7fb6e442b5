#!/usr/bin/env python3
# ruff: noqa: E501  (Go templates and jq expressions read better unwrapped)
"""Print the sandbox's kwok Stage resources (YAML) on stdout.

The sandbox replaces kwok's default stages with these, so a pod on a simulated node
walks through the states a kubelet would report:

  (scheduled) -> ContainerCreating -> Running (not ready) -> Ready after the
  readiness probe's initialDelaySeconds

and a pod whose annotations carry ``helmdeck.dev/simulate`` misbehaves instead:

  image-pull-error  ErrImagePull <-> ImagePullBackOff, phase Pending (ErrImageNeverPull under
                    imagePullPolicy Never, as the kubelet says)
  crash-loop        Running -> CrashLoopBackOff (exit 1, reason Error) -> Running ...
  oom               like crash-loop with lastState.terminated OOMKilled / 137
  never-ready       Running, ready=false forever, "Unhealthy" events every period

Knobs (pod annotations, durations like "2s"):
  helmdeck.dev/ready-delay      overrides readiness initialDelaySeconds
  helmdeck.dev/crash-after      how long a crashing container runs (default 2s)
  helmdeck.dev/crash-backoff    CrashLoopBackOff / ImagePullBackOff wait (default 5s)
  helmdeck.dev/complete-after   run time of restartPolicy Never/OnFailure pods (1s)
Environment (read when scripts/sandbox/up applies the stages):
  HELMDECK_SANDBOX_READY_SCALE  multiplies readiness delays (default 1; 0.1 = ten times faster)

Events are written like a kubelet's (source kubelet, involvedObject.fieldPath
spec.containers{NAME}, count increasing); they describe the pod's first container.
Stdlib only: the script runs before any virtualenv exists.
"""

import os
import sys

SIM = '.metadata.annotations["helmdeck.dev/simulate"]'
C0_WAITING = ".status.containerStatuses[0].state.waiting.reason"
C0_RUNNING = ".status.containerStatuses[0].state.running.startedAt"
C0_PULL_POLICY = ".spec.containers[0].imagePullPolicy"
READY = '.status.conditions[]? | select(.type == "Ready") | .status'
FAILURES = ("image-pull-error", "crash-loop", "oom", "never-ready")


def expr(key, op, *values):
    lines = [f"    - key: '{key}'", f"      operator: {op}"]
    if values:
        lines.append("      values: [" + ", ".join(f"'{v}'" for v in values) + "]")
    return "\n".join(lines)


def indent(text, n):
    pad = " " * n
    return "\n".join(pad + line if line.strip() else line for line in text.strip("\n").splitlines())


def duration(default_ms, jq):
    return (
        "  delay:\n"
        f"    durationMilliseconds: {default_ms}\n"
        "    durationFrom:\n"
        f"      expressionFrom: '{jq}'\n"
    )


def status_patch(template):
    return (
        "  - patch:\n      subresource: status\n      root: status\n      template: |\n"
        + indent(template, 8)
        + "\n"
    )


def meta_patch(template):
    return "  - patch:\n      root: metadata\n      template: |\n" + indent(template, 8) + "\n"


def event(key, type_, reason, message, count="1"):
    """An apply step creating/updating a kubelet-style core/v1 Event for container 0.

    `message` and `count` are Go template expressions evaluated with $c = container 0.
    """
    tpl = f"""
{{{{ $c := index .spec.containers 0 }}}}
apiVersion: v1
kind: Event
metadata:
  name: {{{{ printf "%s.%s.{key}" .metadata.name (trunc 8 .metadata.uid) | Quote }}}}
  namespace: {{{{ .metadata.namespace | Quote }}}}
involvedObject:
  apiVersion: v1
  kind: Pod
  name: {{{{ .metadata.name | Quote }}}}
  namespace: {{{{ .metadata.namespace | Quote }}}}
  uid: {{{{ .metadata.uid | Quote }}}}
  fieldPath: {{{{ printf "spec.containers{{%s}}" $c.name | Quote }}}}
type: {type_}
reason: {reason}
message: {{{{ {message} | Quote }}}}
source:
  component: kubelet
  host: {{{{ .spec.nodeName | Quote }}}}
reportingComponent: kubelet
reportingInstance: {{{{ .spec.nodeName | Quote }}}}
firstTimestamp: {{{{ .metadata.creationTimestamp | Quote }}}}
lastTimestamp: {{{{ Now | Quote }}}}
count: {{{{ {count} }}}}
"""
    return "  - apply:\n      template: |\n" + indent(tpl, 8) + "\n"


def stage(name, selector, steps, delay="  delay:\n    durationMilliseconds: 200\n"):
    return (
        "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\n"
        f"metadata:\n  name: {name}\n  labels: {{app.kubernetes.io/part-of: helmdeck-sandbox}}\n"
        "spec:\n  resourceRef: {apiGroup: v1, kind: Pod}\n"
        "  selector:\n    matchExpressions:\n"
        + expr(".metadata.deletionTimestamp", "DoesNotExist")
        + "\n"
        + "\n".join(selector)
        + "\n"
        + delay
        + "  steps:\n"
        + "".join(steps)
    )


# ---- status templates -----------------------------------------------------------


def conditions(ready, reason="ContainersNotReady"):
    not_ready = (
        "    message: 'containers with unready status: [{{ range $i, $c := .spec.containers }}"
        "{{ if $i }} {{ end }}{{ $c.name }}{{ end }}]'\n"
        f"    reason: {reason}\n"
    )
    lines = ["conditions:"]
    for type_ in ("PodReadyToStartContainers", "Initialized"):
        lines.append(
            f"  - type: {type_}\n    status: 'True'\n    lastTransitionTime: {{{{ $now | Quote }}}}"
        )
    for type_ in ("Ready", "ContainersReady"):
        body = f"  - type: {type_}\n    status: '{'True' if ready else 'False'}'\n    lastTransitionTime: {{{{ $now | Quote }}}}"
        body += "\n    message: ''\n    reason: ''" if ready else "\n" + not_ready.rstrip("\n")
        lines.append(body)
    return "\n".join(lines)


INIT_DONE = """
{{ with .spec.initContainers }}
initContainerStatuses:
{{ range . }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: {{ printf "docker-pullable://%s" .image | Quote }}
  ready: true
  restartCount: 0
  started: false
  state:
    terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}
{{ end }}
{{ end }}
"""


def containers(state, ready="false", started="true", restart="0", last=None):
    """containerStatuses for every container; `state`/`last` are YAML with $c, $o, $now."""
    last_block = ("  lastState:\n" + indent(last, 4) + "\n") if last else "  lastState: {}\n"
    return (
        "containerStatuses:\n"
        "{{ range $i, $c := .spec.containers }}\n"
        "{{ $o := dict }}{{ if $root.status.containerStatuses }}{{ if lt $i (len $root.status.containerStatuses) }}"
        "{{ $o = index $root.status.containerStatuses $i }}{{ end }}{{ end }}\n"
        "- name: {{ $c.name | Quote }}\n"
        "  image: {{ $c.image | Quote }}\n"
        '  imageID: {{ printf "docker-pullable://%s" $c.image | Quote }}\n'
        '  containerID: {{ printf "containerd://%s%s" (trunc 8 $root.metadata.uid) (sha256sum $c.name | trunc 56) | Quote }}\n'
        f"  ready: {ready}\n"
        f"  started: {started}\n"
        f"  restartCount: {{{{ {restart} }}}}\n"
        + last_block
        + "  state:\n"
        + indent(state, 4)
        + "\n"
        "{{ end }}\n"
    )


HEAD = "{{ $now := Now }}\n{{ $root := . }}\n"
RESTARTS = "(int64 (or $o.restartCount 0))"
BACKOFF = '(or (index $root.metadata.annotations "helmdeck.dev/crash-backoff") "5s")'
IMG = "$c.image"

stages = []

# 1. scheduled -> ContainerCreating ------------------------------------------------
stages.append(
    stage(
        "pod-create",
        [expr(".status.podIP", "DoesNotExist")],
        [
            status_patch(
                HEAD
                + conditions(False).replace(
                    "  - type: PodReadyToStartContainers\n    status: 'True'",
                    "  - type: PodReadyToStartContainers\n    status: 'False'",
                )
                + """
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
hostIPs: [{ip: {{ NodeIPWith .spec.nodeName | Quote }}}]
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Pending
startTime: {{ $now | Quote }}
"""
                + containers("waiting: {reason: ContainerCreating}", started="false")
            ),
            event("pulling", "Normal", "Pulling", f'printf "Pulling image %q" {IMG}'),
        ],
    )
)

# 2. ContainerCreating (or a fixed ImagePullBackOff) -> Running, not ready ---------
START_EVENTS = [
    event(
        "pulled",
        "Normal",
        "Pulled",
        f'printf "Successfully pulled image %q in 812ms (812ms including waiting). Image size: 52428800 bytes." {IMG}',
    ),
    event("created", "Normal", "Created", 'printf "Created container: %s" $c.name'),
    event("started", "Normal", "Started", 'printf "Started container %s" $c.name'),
]
stages.append(
    stage(
        "pod-start",
        [
            expr(C0_WAITING, "In", "ContainerCreating", "ImagePullBackOff", "ErrImagePull"),
            expr(SIM, "NotIn", "image-pull-error"),
        ],
        [
            status_patch(
                HEAD
                + conditions(False)
                + "\nphase: Running\n"
                + INIT_DONE
                + containers("running: {startedAt: {{ $now | Quote }}}", restart=RESTARTS)
            )
        ]
        + START_EVENTS,
        delay="  delay:\n    durationMilliseconds: 800\n",
    )
)

# 3. Running -> Ready after the readiness probe's initialDelaySeconds --------------
# HELMDECK_SANDBOX_READY_SCALE (read when `up` applies the stages) multiplies every
# readiness delay, e.g. 0.1 turns the seed's initialDelaySeconds 10 into 1s.
READY_SCALE = float(os.environ.get("HELMDECK_SANDBOX_READY_SCALE", "1") or 1)
READY_DELAY = (
    '.metadata.annotations["helmdeck.dev/ready-delay"] // '
    f'((([.spec.containers[].readinessProbe.initialDelaySeconds // 0] | max) * {READY_SCALE} | tostring) + "s")'
)
stages.append(
    stage(
        "pod-ready",
        [
            expr(".status.phase", "In", "Running"),
            expr(C0_RUNNING, "Exists"),
            expr(READY, "NotIn", "True"),
            expr(SIM, "NotIn", "never-ready", "crash-loop", "oom"),
        ],
        [
            status_patch(
                HEAD
                + conditions(True)
                + "\n"
                + containers(
                    "running: {startedAt: {{ $o.state.running.startedAt | Quote }}}",
                    ready="true",
                    restart=RESTARTS,
                    last="{{ with $o.lastState }}{{ toJson . }}{{ else }}{}{{ end }}",
                )
            )
        ],
        delay=duration(0, READY_DELAY),
    )
)

# 4. restartPolicy Never/OnFailure pods (Jobs, helm test hooks) complete -----------
stages.append(
    stage(
        "pod-complete",
        [
            expr(".status.phase", "In", "Running"),
            expr(READY, "In", "True"),
            expr(".spec.restartPolicy", "In", "Never", "OnFailure"),
        ],
        [
            status_patch(
                HEAD
                + """
conditions:
- {type: Ready, status: 'False', reason: PodCompleted, message: '', lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: 'False', reason: PodCompleted, message: '', lastTransitionTime: {{ $now | Quote }}}
- {type: PodReadyToStartContainers, status: 'False', lastTransitionTime: {{ $now | Quote }}}
phase: Succeeded
"""
                + containers(
                    "terminated: {exitCode: 0, reason: Completed, startedAt: {{ $o.state.running.startedAt | Quote }}, finishedAt: {{ $now | Quote }}}",
                    started="false",
                    restart=RESTARTS,
                )
            )
        ],
        delay=duration(1000, '.metadata.annotations["helmdeck.dev/complete-after"]'),
    )
)

# 5. image-pull-error: ErrImagePull <-> ImagePullBackOff ---------------------------
PULL_ERR = (
    'printf "rpc error: code = NotFound desc = failed to pull and unpack image %q: '
    'failed to resolve reference %q: %s: not found" $c.image $c.image $c.image'
)
stages.append(
    stage(
        "pod-image-pull-error",
        [
            expr(C0_WAITING, "In", "ContainerCreating", "ImagePullBackOff"),
            expr(SIM, "In", "image-pull-error"),
            expr(C0_PULL_POLICY, "NotIn", "Never"),
        ],
        [
            status_patch(
                HEAD
                + conditions(False)
                + "\nphase: Pending\n"
                + containers(
                    "waiting:\n  reason: ErrImagePull\n  message: {{ " + PULL_ERR + " | Quote }}",
                    started="false",
                )
            ),
            event(
                "failed-pull",
                "Warning",
                "Failed",
                f'printf "Failed to pull image %q: %s" {IMG} ({PULL_ERR})',
                count='add1 (int64 (or (index .metadata.annotations "helmdeck.dev/pull-attempts") 0))',
            ),
            event(
                "failed-errimagepull",
                "Warning",
                "Failed",
                '"Error: ErrImagePull"',
                count='add1 (int64 (or (index .metadata.annotations "helmdeck.dev/pull-attempts") 0))',
            ),
            meta_patch(
                'annotations:\n  helmdeck.dev/pull-attempts: {{ add1 (int64 (or (index .metadata.annotations "helmdeck.dev/pull-attempts") 0)) | toString | Quote }}'
            ),
        ],
        delay=duration(1000, '.metadata.annotations["helmdeck.dev/crash-backoff"]'),
    )
)
stages.append(
    stage(
        "pod-image-pull-backoff",
        [expr(C0_WAITING, "In", "ErrImagePull"), expr(SIM, "In", "image-pull-error")],
        [
            status_patch(
                HEAD
                + conditions(False)
                + "\nphase: Pending\n"
                + containers(
                    'waiting:\n  reason: ImagePullBackOff\n  message: {{ printf "Back-off pulling image %q" $c.image | Quote }}',
                    started="false",
                )
            ),
            event(
                "backoff-pull",
                "Normal",
                "BackOff",
                f'printf "Back-off pulling image %q" {IMG}',
                count='int64 (or (index .metadata.annotations "helmdeck.dev/pull-attempts") 1)',
            ),
            event(
                "failed-imagepullbackoff",
                "Warning",
                "Failed",
                '"Error: ImagePullBackOff"',
                count='int64 (or (index .metadata.annotations "helmdeck.dev/pull-attempts") 1)',
            ),
        ],
        delay="  delay:\n    durationMilliseconds: 1000\n",
    )
)

# 5b. image-pull-error with imagePullPolicy Never (a local image not on the node): what the
# kubelet really says is ErrImageNeverPull, never a pull or a back-off (checked against the
# sandbox's real node)
NEVER_PULL = 'printf "Container image %q is not present with pull policy of Never" $c.image'
stages.append(
    stage(
        "pod-image-never-pull",
        [
            expr(C0_WAITING, "In", "ContainerCreating"),
            expr(SIM, "In", "image-pull-error"),
            expr(C0_PULL_POLICY, "In", "Never"),
        ],
        [
            status_patch(
                HEAD
                + conditions(False)
                + "\nphase: Pending\n"
                + containers(
                    "waiting:\n  reason: ErrImageNeverPull\n  message: {{ "
                    + NEVER_PULL
                    + " | Quote }}",
                    started="false",
                )
            ),
            event(
                "never-pull",
                "Warning",
                "ErrImageNeverPull",
                NEVER_PULL.replace("$c.image", IMG),
                count="1",
            ),
            event(
                "failed-errimageneverpull",
                "Warning",
                "Failed",
                '"Error: ErrImageNeverPull"',
                count="1",
            ),
        ],
    )
)

# 6. crash-loop / oom: Running -> CrashLoopBackOff -> Running ... -----------------
for sim, reason, code in (("crash-loop", "Error", 1), ("oom", "OOMKilled", 137)):
    backoff_msg = (
        'printf "back-off %s restarting failed container=%s pod=%s_%s(%s)" '
        f"{BACKOFF} $c.name $root.metadata.name $root.metadata.namespace $root.metadata.uid"
    )
    stages.append(
        stage(
            f"pod-{sim}-crash",
            [
                expr(".status.phase", "In", "Running"),
                expr(C0_RUNNING, "Exists"),
                expr(SIM, "In", sim),
            ],
            [
                status_patch(
                    HEAD
                    + conditions(False)
                    + "\nphase: Running\n"
                    + containers(
                        "waiting:\n  reason: CrashLoopBackOff\n  message: {{ "
                        + backoff_msg
                        + " | Quote }}",
                        restart=f"add1 {RESTARTS}",
                        last=f"terminated:\n  exitCode: {code}\n  reason: {reason}\n"
                        "  startedAt: {{ $o.state.running.startedAt | Quote }}\n  finishedAt: {{ $now | Quote }}",
                    )
                ),
                event(
                    "backoff-restart",
                    "Warning",
                    "BackOff",
                    'printf "Back-off restarting failed container %s in pod %s_%s(%s)" $c.name .metadata.name .metadata.namespace .metadata.uid',
                    count="add1 (int64 (or (index .status.containerStatuses 0).restartCount 0))",
                ),
            ],
            delay=duration(2000, '.metadata.annotations["helmdeck.dev/crash-after"]'),
        )
    )
stages.append(
    stage(
        "pod-crash-restart",
        [expr(C0_WAITING, "In", "CrashLoopBackOff")],
        [
            status_patch(
                HEAD
                + conditions(False)
                + "\nphase: Running\n"
                + containers(
                    "running: {startedAt: {{ $now | Quote }}}",
                    restart=RESTARTS,
                    last="{{ with $o.lastState }}{{ toJson . }}{{ else }}{}{{ end }}",
                )
            ),
            event(
                "pulled-present",
                "Normal",
                "Pulled",
                f'printf "Container image %q already present on machine" {IMG}',
                count="add1 (int64 (or (index .status.containerStatuses 0).restartCount 0))",
            ),
            event(
                "created",
                "Normal",
                "Created",
                'printf "Created container: %s" $c.name',
                count="add1 (int64 (or (index .status.containerStatuses 0).restartCount 0))",
            ),
            event(
                "started",
                "Normal",
                "Started",
                'printf "Started container %s" $c.name',
                count="add1 (int64 (or (index .status.containerStatuses 0).restartCount 0))",
            ),
        ],
        delay=duration(5000, '.metadata.annotations["helmdeck.dev/crash-backoff"]'),
    )
)

# 7. never-ready: Running, readiness probe fails every periodSeconds --------------
PROBE_FAILS = 'int64 (or (index .metadata.annotations "helmdeck.dev/probe-failures") 0)'
stages.append(
    stage(
        "pod-never-ready",
        [
            expr(".status.phase", "In", "Running"),
            expr(C0_RUNNING, "Exists"),
            expr(SIM, "In", "never-ready"),
        ],
        [
            meta_patch(
                "annotations:\n  helmdeck.dev/probe-failures: {{ add1 ("
                + PROBE_FAILS
                + ") | toString | Quote }}"
            ),
            event(
                "unhealthy",
                "Warning",
                "Unhealthy",
                '"Readiness probe failed: HTTP probe failed with statuscode: 503"',
                count=f"add1 ({PROBE_FAILS})",
            ),
        ],
        delay=duration(
            10000, '(((.spec.containers[0].readinessProbe.periodSeconds // 10) | tostring) + "s")'
        ),
    )
)

# 8. deletion: terminating pods go away (no finalizers left) -----------------------
stages.append(
    "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\n"
    "metadata:\n  name: pod-delete\n  labels: {app.kubernetes.io/part-of: helmdeck-sandbox}\n"
    "spec:\n  resourceRef: {apiGroup: v1, kind: Pod}\n"
    "  selector:\n    matchExpressions:\n"
    + expr(".metadata.deletionTimestamp", "Exists")
    + "\n"
    + expr(".metadata.finalizers", "DoesNotExist")
    + "\n"
    "  delay:\n    durationMilliseconds: 300\n"
    "  steps:\n  - delete: true\n"
)

if __name__ == "__main__":
    sys.stdout.write("\n---\n".join(stages))
