"""Writes to profiles. Every path (form, admin, import, clone) ends here, inside one
transaction, and every change leaves an AuditEvent."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from deployments import build_sources, crypto
from deployments.models import AuditEvent, Cluster, Component, ConfigEntry, Profile, SecretEntry
from deployments.services.checks import ingress_conflicts, node_port_conflicts
from deployments.spec import FieldError, SpecError, key_path, parse_spec
from deployments.spec_rows import component_fields, spec_from_profile
from deployments.validators import NODE_PORT_MAX, NODE_PORT_MIN

PROFILE_FIELDS = ("name", "namespace", "environment", "description")


def audit_record(*, actor, action, profile=None, target="", before=None, after=None):
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=getattr(actor, "username", "") or "system",
        action=action,
        profile=profile,
        profile_name=profile.name if profile else "",
        target=target,
        before=before,
        after=after,
    )


# How often a profile's activity is written for its sleep schedule: a busy page is one
# UPDATE per profile in this time, not one per visit.
TOUCH_EVERY = timedelta(minutes=5)


_UNREAD = object()


def profile_touch(*, profile_id, now=None, active_at=_UNREAD):
    """A deploy, an action on what runs or a visit of the profile's page happened: the sleep
    schedule counts from now (services/operations.profiles_sleep_idle). One UPDATE, and
    none for a profile without a schedule or touched within TOUCH_EVERY; no query at all
    when the caller passes the `active_at` it read and that is recent."""
    now = now or timezone.now()
    if active_at is not _UNREAD and active_at is not None and active_at >= now - TOUCH_EVERY:
        return
    Profile.objects.filter(pk=profile_id, sleep_after_hours__isnull=False).filter(
        Q(active_at=None) | Q(active_at__lt=now - TOUCH_EVERY)
    ).update(active_at=now)


def cluster_names():
    return set(Cluster.objects.values_list("name", flat=True))


def profile_import(*, data, actor):
    """Create or replace the profile a document names. Raises SpecError; writes nothing then."""
    spec = parse_spec(data, cluster_names=cluster_names())
    existing = Profile.objects.filter(name=spec["name"]).first()
    return profile_apply_spec(spec=spec, profile=existing, actor=actor)


@transaction.atomic
def profile_apply_spec(*, spec, actor, profile=None):
    """Make `profile` (or a new one) match a parsed spec exactly.

    Components, config keys and secrets the spec leaves out are removed. A secret given as
    {stored: true} keeps the value already stored. Conflicts that need the database (name
    taken, nodePort used elsewhere on the cluster) raise SpecError before anything is written.
    """
    if profile is not None:
        profile = Profile.objects.select_for_update().get(pk=profile.pk)
    cluster = Cluster.objects.get(name=spec["cluster"])
    profile_check_conflicts(spec=spec, cluster=cluster, profile=profile)

    creating = profile is None
    before = None if creating else _profile_summary(profile)
    if creating:
        profile = Profile(cluster=cluster)
    for field in PROFILE_FIELDS:
        setattr(profile, field, spec[field])
    profile.cluster = cluster
    profile.updated_by = actor if getattr(actor, "pk", None) else None
    try:
        with transaction.atomic():
            profile.save()
    except IntegrityError:
        raise SpecError(
            [FieldError("name", f"a profile named {spec['name']} already exists")]
        ) from None

    _apply_components(profile, spec["components"])
    _apply_config(profile, spec["config"], actor)
    _apply_secrets(profile, spec["secrets"], actor)
    after = _profile_summary(profile)
    if creating:
        audit_record(
            actor=actor, action="profile.created", profile=profile, target=profile.name, after=after
        )
    elif before != after:
        audit_record(
            actor=actor,
            action="profile.changed",
            profile=profile,
            target=profile.name,
            before=before,
            after=after,
        )
    return profile


def profile_check_conflicts(*, spec, cluster, profile=None):
    """Rules that need the database or the filesystem: name taken, nodePort or Ingress host
    used on the cluster, a {stored: true} secret with nothing stored, a build context or Dockerfile
    outside the source roots. Raises SpecError; reads only."""
    errors = profile_build_source_errors(spec=spec)
    renamed = profile is None or profile.name != spec["name"]
    if renamed and Profile.objects.filter(name=spec["name"]).exists():
        errors.append(FieldError("name", f"a profile named {spec['name']} already exists"))
    for port, component, owner in node_port_conflicts(spec=spec, cluster=cluster, profile=profile):
        errors.append(
            FieldError(
                f"components.{component}.service.nodePort",
                f"{port} is already used on cluster {cluster.name} by {owner}; "
                f"pick another port in {NODE_PORT_MIN}-{NODE_PORT_MAX}",
            )
        )
    for host, component, owner in ingress_conflicts(spec=spec, cluster=cluster, profile=profile):
        errors.append(
            FieldError(
                f"components.{component}.ingress.host",
                f"{host} is already routed on cluster {cluster.name} to {owner}; pick another host",
            )
        )
    stored = set()
    if profile is not None:
        stored = set(profile.secrets.exclude(ciphertext="").values_list("key", flat=True))
    for key, source in spec["secrets"].items():
        if "stored" in source and key not in stored:
            errors.append(
                FieldError(
                    f"secrets.{key}",
                    'has no stored value to keep; give {value: "..."} or {fromEnv: ENV_NAME}',
                )
            )
    if errors:
        raise SpecError(errors)


def profile_build_source_errors(*, spec):
    """One FieldError per build context or Dockerfile that `build_sources.build_source` refuses."""
    errors = []
    for comp in spec["components"]:
        build = comp["build"]
        if not build:
            continue
        try:
            build_sources.build_source(build["context"], build["dockerfile"])
        except ValidationError as exc:
            path = key_path("components", comp["name"])
            errors.append(FieldError(f"{path}.build.{exc.code}", " ".join(exc.messages)))
    return errors


def _profile_summary(profile):
    """What a profile.changed event records: fields and components, never secret values."""
    return {
        **{field: getattr(profile, field) for field in PROFILE_FIELDS},
        "cluster": profile.cluster.name,
        "components": spec_from_profile(profile)["components"] if profile.pk else {},
    }


def _apply_components(profile, components):
    keep = [c["name"] for c in components]
    profile.components.exclude(name__in=keep).delete()
    existing = {c.name: c for c in profile.components.all()}
    for position, comp in enumerate(components):
        component = existing.get(comp["name"]) or Component(profile=profile)
        for field, value in component_fields(comp).items():
            setattr(component, field, value)
        component.position = position
        component.save()


def _apply_config(profile, config, actor):
    existing = {e.key: e for e in profile.config.all()}
    for key, entry in existing.items():
        if key not in config:
            entry.delete()
            audit_record(
                actor=actor,
                action="config.deleted",
                profile=profile,
                target=key,
                before={key: entry.value},
            )
    for key, value in config.items():
        config_set(profile=profile, key=key, value=value, actor=actor, entry=existing.get(key))


def config_set(*, profile, key, value, actor, entry=None):
    """Create or change one config value, auditing before/after. Returns the entry."""
    if entry is None:
        entry = ConfigEntry.objects.filter(profile=profile, key=key).first()
    if entry is not None and entry.value == value:
        return entry
    before = {key: entry.value} if entry else None
    entry = entry or ConfigEntry(profile=profile, key=key)
    entry.value = value
    entry.updated_by = actor if getattr(actor, "pk", None) else None
    entry.save()
    audit_record(
        actor=actor,
        action="config.created" if before is None else "config.changed",
        profile=profile,
        target=key,
        before=before,
        after={key: value},
    )
    return entry


def _apply_secrets(profile, secrets, actor):
    existing = {e.key: e for e in profile.secrets.all()}
    for key, entry in existing.items():
        if key not in secrets:
            entry.delete()
            audit_record(actor=actor, action="secret.deleted", profile=profile, target=key)
    for key, source in secrets.items():
        if "stored" in source:
            continue  # keep what is stored; _check_conflicts made sure there is a value
        secret_set(
            profile=profile,
            key=key,
            actor=actor,
            entry=existing.get(key),
            value=source.get("value"),
            from_env=source.get("fromEnv", ""),
        )


def secret_set(*, profile, key, actor, value=None, from_env="", entry=None):
    """Store a secret (encrypted) or point it at an environment variable.

    The audit event says only that the secret changed: no value, no ciphertext.
    Setting the same environment-variable source again is not a change; a value given
    again is always recorded, because comparing would mean decrypting the old one.
    """
    if entry is None:
        entry = SecretEntry.objects.filter(profile=profile, key=key).first()
    if entry is not None and value is None and entry.from_env == from_env and from_env:
        return entry
    created = entry is None
    entry = entry or SecretEntry(profile=profile, key=key)
    entry.ciphertext = crypto.encrypt(value) if value is not None else ""
    entry.from_env = "" if value is not None else from_env
    entry.updated_by = actor if getattr(actor, "pk", None) else None
    entry.save()
    audit_record(
        actor=actor,
        action="secret.created" if created else "secret.changed",
        profile=profile,
        target=key,
        after={"source": "environment" if entry.from_env else "stored value"},
    )
    return entry


@transaction.atomic
def profile_clone(*, profile, name, namespace, actor):
    """A copy under a new name: components and config copied, secrets carried over encrypted."""
    spec = parse_spec_of(profile)
    spec.update(name=name, namespace=namespace)
    for component in spec["components"]:
        # nodePorts are unique per cluster: the clone lets Kubernetes pick a free one.
        component["service"]["nodePort"] = None
    secrets = {key: src for key, src in spec["secrets"].items() if "fromEnv" in src}
    spec["secrets"] = secrets
    clone = profile_apply_spec(spec=spec, actor=actor)
    for entry in profile.secrets.exclude(ciphertext=""):
        SecretEntry.objects.create(
            profile=clone, key=entry.key, ciphertext=entry.ciphertext, updated_by=clone.updated_by
        )
        audit_record(
            actor=actor,
            action="secret.created",
            profile=clone,
            target=entry.key,
            after={"source": f"copied from {profile.name}"},
        )
    audit_record(
        actor=actor,
        action="profile.cloned",
        profile=clone,
        target=clone.name,
        before={"from": profile.name},
    )
    return clone


def parse_spec_of(profile):
    """The normalized spec of a saved profile (export document run back through the parser)."""
    return parse_spec(spec_from_profile(profile), cluster_names={profile.cluster.name})


@transaction.atomic
def profile_delete(*, profile, actor):
    name = profile.name
    audit_record(
        actor=actor,
        action="profile.deleted",
        profile=profile,
        target=name,
        before={"name": name, "namespace": profile.namespace},
    )
    profile.delete()
