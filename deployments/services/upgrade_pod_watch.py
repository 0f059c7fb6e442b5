"""Pod problems remembered while helm waits (a stage helper of release_stages.py)."""

import time

from deployments.integrations import IntegrationError
from deployments.integrations.kube import Kube
from deployments.services.diagnosis import pod_problems


class PodWatcher:
    """While helm waits, remember the latest reason pods give for not being Ready, so a
    release rolled back by helm can still say why (its pods are gone by then)."""

    EVERY = 2.0  # seconds between looks

    def __init__(self, run, every=None):
        self.run, self.every = run, self.EVERY if every is None else every
        # the first look after `every` seconds: at the start helm has created nothing yet,
        # and building a client then would only take CPU from helm
        self._last, self._problems, self._kube = time.monotonic(), [], None

    def tick(self):
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        try:
            if self._kube is None:
                self._kube = Kube(self.run.cluster, shared=True)
            spec = self.run.spec
            found = pod_problems(
                self._kube.release_pods(spec["namespace"], spec["name"]),
                self._kube.events(spec["namespace"]),
            )
        except IntegrationError:
            return
        new = [p for p in found if p.kind != "not-ready"] or found
        if new:
            for problem in new:
                if str(problem) not in {str(p) for p in self._problems}:
                    self.run.log(f"pod problem: {problem}")
            self._problems = new

    def reason(self):
        if self._kube is not None:
            self._kube.close()
        if not self._problems:
            return ""
        worst = self._problems[0]
        return f"{worst.message} (pod {worst.pod}); fix: {worst.fix}"
