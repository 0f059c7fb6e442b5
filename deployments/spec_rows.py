"""Between the profile spec (spec.py) and the model rows: `component_fields` turns a spec
component into Component field values, `component_spec` the other way (for a model instance
or a form's cleaned data), and `spec_from_profile` is a saved profile's export document. It
writes secret keys and their source, never a value.
"""

from deployments.spec import (
    DEFAULT_DOCKERFILE,
    DEFAULT_INGRESS_CLASS,
    DEFAULT_INGRESS_PATH,
    DEFAULT_PROBES,
)


def component_fields(comp):
    """Spec component -> Component model field values (the flat shape forms edit)."""
    res, probes = comp["resources"], comp["probes"]
    fields = {
        "name": comp["name"],
        "image": comp["image"],
        "tag": comp["tag"],
        "build_context": (comp["build"] or {}).get("context") or "",
        "dockerfile": (comp["build"] or {}).get("dockerfile") or DEFAULT_DOCKERFILE,
        "build_args": dict((comp["build"] or {}).get("args") or {}),
        "pod_annotations": dict(comp.get("podAnnotations") or {}),
        "port": comp["port"],
        "replicas": comp["replicas"],
        "service_type": comp["service"]["type"],
        "node_port": comp["service"]["nodePort"],
        "cpu_request": res["requests"]["cpu"],
        "cpu_limit": res["limits"]["cpu"],
        "memory_request": res["requests"]["memory"],
        "memory_limit": res["limits"]["memory"],
        **_ingress_fields(comp.get("ingress")),
    }
    for kind in DEFAULT_PROBES:
        p = probes[kind]
        fields.update(
            {
                f"{kind}_path": p["path"],
                f"{kind}_initial_delay": p["initialDelaySeconds"],
                f"{kind}_period": p["periodSeconds"],
                f"{kind}_timeout": p["timeoutSeconds"],
                f"{kind}_failure_threshold": p["failureThreshold"],
            }
        )
    return fields


def _ingress_fields(ingress):
    if not ingress:
        return {
            "ingress_host": "",
            "ingress_path": DEFAULT_INGRESS_PATH,
            "ingress_class": DEFAULT_INGRESS_CLASS,
            "ingress_tls_secret": "",
        }
    return {
        "ingress_host": ingress["host"],
        "ingress_path": ingress["path"],
        "ingress_class": ingress["className"],
        "ingress_tls_secret": ingress["tlsSecret"] or "",
    }


def component_spec(fields):
    """Component model field values (a model instance's or a form's) -> spec component."""

    def probe(kind):
        return {
            "path": fields[f"{kind}_path"],
            "initialDelaySeconds": fields[f"{kind}_initial_delay"],
            "periodSeconds": fields[f"{kind}_period"],
            "timeoutSeconds": fields[f"{kind}_timeout"],
            "failureThreshold": fields[f"{kind}_failure_threshold"],
        }

    service = {"type": fields["service_type"]}
    if fields.get("node_port") is not None:
        service["nodePort"] = fields["node_port"]
    comp = {"image": fields["image"], "tag": fields["tag"]}
    if fields.get("build_context"):
        comp["build"] = {
            "context": fields["build_context"],
            "dockerfile": fields.get("dockerfile") or DEFAULT_DOCKERFILE,
        }
        if fields.get("build_args"):
            comp["build"]["args"] = fields["build_args"]  # the parser checks its shape
    comp.update(
        {
            "port": fields["port"],
            "replicas": fields["replicas"],
            "service": service,
            "resources": {
                "requests": {"cpu": fields["cpu_request"], "memory": fields["memory_request"]},
                "limits": {"cpu": fields["cpu_limit"], "memory": fields["memory_limit"]},
            },
            "probes": {kind: probe(kind) for kind in DEFAULT_PROBES},
            **(
                {"podAnnotations": fields["pod_annotations"]}
                if fields.get("pod_annotations")
                else {}
            ),
        }
    )
    if fields.get("ingress_host"):
        comp["ingress"] = {
            "host": fields["ingress_host"],
            "path": fields.get("ingress_path") or DEFAULT_INGRESS_PATH,
            "className": fields.get("ingress_class") or DEFAULT_INGRESS_CLASS,
        }
        if fields.get("ingress_tls_secret"):
            comp["ingress"]["tlsSecret"] = fields["ingress_tls_secret"]
    return comp


def spec_from_profile(profile):
    """The export document of a saved profile. Secret values are never written."""
    components = {}
    for component in profile.components.all():
        fields = {f.name: getattr(component, f.name) for f in component._meta.concrete_fields}
        components[component.name] = component_spec(fields)
    doc = {
        "name": profile.name,
        "namespace": profile.namespace,
        "cluster": profile.cluster.name,
        "environment": profile.environment,
    }
    if profile.description:
        doc["description"] = profile.description
    doc["components"] = components
    doc["config"] = {entry.key: entry.value for entry in profile.config.all()}
    doc["secrets"] = {
        entry.key: {"fromEnv": entry.from_env} if entry.from_env else {"stored": True}
        for entry in profile.secrets.all()
    }
    return doc
