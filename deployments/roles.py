"""The three roles, as Django groups (created by migration 0002, kept in sync by it)."""

VIEWER, DEPLOYER, ADMIN = "viewer", "deployer", "admin"
MODELS = ("cluster", "profile", "component", "configentry", "secretentry", "auditevent")

ROLE_PERMISSIONS = {
    # read everything but secret values (which no page shows anyway)
    VIEWER: [f"view_{model}" for model in MODELS],
    # ... and press Deploy, Roll back, Cancel
    DEPLOYER: [f"view_{model}" for model in MODELS] + ["deploy_profile"],
    # ... and edit profiles, config, secrets and clusters, in the pages and the admin site
    ADMIN: [
        f"{action}_{model}"
        for model in MODELS
        if model != "auditevent"
        for action in ("add", "change", "delete", "view")
    ]
    + ["view_auditevent", "deploy_profile", "exec_pod"]
    # ... and their terminal sessions' records (services/terminals.py), read-only
    + ["view_terminalsession"]
    # everyone's API tokens in the admin site: see them, revoke them (never create them)
    + ["view_apitoken", "change_apitoken"]
    # notification channels and rules (the notifications page), and the messages sent
    + [
        f"{action}_{model}"
        for model in ("notificationchannel", "notificationrule")
        for action in ("add", "change", "delete", "view")
    ]
    + ["view_notification"],
}


def create_roles(apps, schema_editor=None):
    """A migration's step (0002, and again whenever ROLE_PERMISSIONS names a new model's
    permissions): the permissions Django would create after all migrations, now, then the
    groups."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_roles(apps)


def sync_roles(apps):
    """Create the three groups with their permissions (idempotent).

    `apps` is a migration's historical registry or django.apps.apps; migration 0002 calls
    it, and so can anything that finds the groups gone (tests that flush the database).
    """
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="deployments", codename__in=codenames)
        )


def ensure_default_cluster(apps):
    """The default Minikube (`minikube start --cpus=4 --memory=8192`): 4 CPUs, 8 GiB;
    kubeconfig from $KUBECONFIG."""
    Cluster = apps.get_model("deployments", "Cluster")
    Cluster.objects.get_or_create(
        name="minikube",
        defaults={"minikube_profile": "minikube", "capacity_cpus": 4, "capacity_memory": "8Gi"},
    )
