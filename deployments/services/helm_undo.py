"""Undoing a helm operation that was interrupted (a stage helper of release_stages.py, also
used by the reaper)."""

from django.conf import settings

from deployments.integrations import IntegrationError


def undo_pending(run, helm, status, why):
    """Undo a helm operation that was stopped or killed midway: its latest revision is
    pending-* (or failed, when the killed helm got to record that). Roll back to the last
    deployed revision (a first install is uninstalled), then record a pending revision as
    failed, so that `helm history` shows nothing pending. Returns what runs now:
    "deployed", "uninstalled", or the state found when undoing failed."""
    name, namespace = run.spec["name"], run.spec["namespace"]
    state, revision = status["info"]["status"], status.get("version")
    try:
        if state == "pending-install" or revision == 1:
            run.log(f"helm left the first install {state}: uninstalling it")
            helm.uninstall(name, namespace, timeout=settings.HELMDECK_HELM_TIMEOUT)
            return "uninstalled"
        run.log(f"helm left revision {revision} {state}: rolling back")
        helm.rollback(name, namespace, timeout=settings.HELMDECK_HELM_TIMEOUT)
    except IntegrationError as exc:
        run.log(f"undoing the {state} release failed: {exc}")
        return state
    if state.startswith("pending-"):
        try:
            helm.mark_failed(name, namespace, revision, f"{why}; rolled back by Helmdeck")
        except IntegrationError as exc:
            run.log(f"revision {revision} stays {state} in helm history: {exc}")
    return "deployed"
