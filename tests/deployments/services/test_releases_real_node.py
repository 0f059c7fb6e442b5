"""Releases that fail for real on the sandbox's node: the kubelet's own readiness probe
fails, a container crash-loops, one is OOM-killed, an image is not on the node. Each
release ends in the state a user must see (rolled back to what ran before, or failed)
with the kubelet's reason in words. The profile: probe_profile (tests/fixtures/profiles.py)."""

import pytest

from deployments.models import Release
from deployments.services.profiles import config_set
from deployments.services.releases import release_request, release_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def deploy(profile):
    return release_run(release_request(profile=profile, actor=None, build=False).pk)


def running_greeting(ns):
    pods = [
        p
        for p in ns.pods("app.kubernetes.io/instance=probe")
        if p.metadata.deletion_timestamp is None and p.spec.node_name == "helmdeck-real"
    ]
    env = ns.core.read_namespaced_config_map("probe-config", ns.namespace).data
    return env["GREETING"], len(pods)


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"NOT_READY": "1"}, "Running but not Ready: the readiness probe fails"),
        ({"EXIT_CODE": "3"}, "CrashLoopBackOff (exit code 3"),
        ({"ALLOCATE_MB": "300"}, "OOMKilled (exit code 137)"),
    ],
    ids=["readiness", "crash-loop", "oom"],
)
def test_a_release_that_fails_on_the_node_rolls_back_and_says_why(
    probe_profile, real_node, config, reason
):
    first = deploy(probe_profile)
    assert first.status == Release.Status.SUCCEEDED, first.reason

    for key, value in {"GREETING": "v2", **config}.items():
        config_set(profile=probe_profile, key=key, value=value, actor=None)
    broken = deploy(probe_profile)

    log = list(broken.log_lines.values_list("text", flat=True))[-25:]
    if broken.status != Release.Status.ROLLED_BACK:
        print("RELEASE LOG\n" + "\n".join(log))
    assert broken.status == Release.Status.ROLLED_BACK, (broken.status, broken.reason, log)
    assert reason in broken.reason, broken.reason
    assert "previous revision was restored" in broken.reason
    assert running_greeting(real_node) == ("v1", 1)  # what ran before runs again


def test_an_image_that_is_not_on_the_node_fails_with_err_image_never_pull(probe_profile, real_node):
    probe_profile.components.filter(name="web").update(tag="not-loaded")
    release = deploy(probe_profile)

    assert release.status == Release.Status.FAILED, (release.status, release.reason)
    assert "ErrImageNeverPull" in release.reason
    assert "is not on the node" in release.reason


def test_the_cli_exits_1_with_the_kubelets_reason_when_a_deploy_fails_on_the_node(
    probe_profile, capsys, settings
):
    from django.core.management import call_command

    def deploy_command():
        with pytest.raises(SystemExit) as exited:
            call_command("deploy", "probe", "--wait", "--here", "--no-build")
        out, err = capsys.readouterr()
        return exited.value.code, out, err

    assert deploy_command()[0] == 0
    probe_profile.components.filter(name="web").update(tag="not-loaded")
    settings.HELMDECK_HELM_TIMEOUT = 15
    code, _, err = deploy_command()
    assert code == 1, err
    assert "rolled back" in err
    assert "ErrImageNeverPull" in err  # pull policy Never: the kubelet's own reason
