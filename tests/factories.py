import factory
from django.contrib.auth.models import Group, User

from deployments.models import Cluster, Component, ConfigEntry, Profile, SecretEntry

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        """UserFactory(role="viewer"|"deployer"|"admin") puts the user in that group."""
        if extracted:
            self.groups.add(Group.objects.get(name=extracted))
        self.save()


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster
        django_get_or_create = ("name",)

    name = "minikube"


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Profile

    name = factory.Sequence(lambda n: f"app-{n}")
    namespace = factory.LazyAttribute(lambda o: o.name)
    cluster = factory.SubFactory(ClusterFactory)


class ComponentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Component

    profile = factory.SubFactory(ProfileFactory)
    name = factory.Sequence(lambda n: f"web{n}")
    image = factory.LazyAttribute(lambda o: f"{o.profile.name}-{o.name}")
    tag = "1.0.0"
    port = 8000


class ConfigEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConfigEntry

    profile = factory.SubFactory(ProfileFactory)
    key = factory.Sequence(lambda n: f"KEY_{n}")
    value = "value"


class SecretEntryFactory(factory.django.DjangoModelFactory):
    """SecretEntryFactory(value="...") stores that value encrypted, as the service does."""

    class Meta:
        model = SecretEntry

    profile = factory.SubFactory(ProfileFactory)
    key = factory.Sequence(lambda n: f"SECRET_{n}")
    from_env = ""

    @classmethod
    def _create(cls, model_class, *args, value="s3cr3t-value", **kwargs):
        from deployments import crypto

        if not kwargs.get("from_env"):
            kwargs["ciphertext"] = crypto.encrypt(value)
        return super()._create(model_class, *args, **kwargs)


def make_release(profile, status="succeeded", *, revision=None, build=False, log=(), **fields):
    """A release as the service requests it, then moved to `status` (with timings, and
    LogLines `log` on its first step) as a worker would have left it."""
    from datetime import timedelta

    from django.utils import timezone

    from deployments.models import LogLine, Release, Step
    from deployments.services.releases import release_request

    release = release_request(profile=profile, actor=None, build=build)
    now = timezone.now()
    changes = {"status": status, "helm_revision": revision, "started_at": now, **fields}
    if status in Release.TERMINAL:
        changes.setdefault("finished_at", now + timedelta(seconds=42))
        step_status = Step.Status.DONE if status == Release.Status.SUCCEEDED else Step.Status.FAILED
        release.steps.update(status=step_status, started_at=now, finished_at=now)
    Release.objects.filter(pk=release.pk).update(**changes)
    step = release.steps.order_by("position").first()
    LogLine.objects.bulk_create(
        LogLine(release=release, step=step, sequence=n, text=text)
        for n, text in enumerate(log, start=1)
    )
    release.refresh_from_db()
    return release


def pod_state(profile, name, **fields):
    """A PodState row of `profile` as the watcher would write it: a Ready backend pod
    unless `fields` say otherwise."""
    from datetime import timedelta

    from django.utils import timezone

    from deployments.models import PodState

    defaults = {
        "namespace": profile.namespace,
        "component": "backend",
        "phase": "Running",
        "ready": True,
        "ready_containers": 1,
        "total_containers": 1,
        "node": "node-1",
        "image": "todo-backend:1.0.0",
        "started_at": timezone.now() - timedelta(minutes=5),
    }
    return PodState.objects.create(profile=profile, name=name, **{**defaults, **fields})
