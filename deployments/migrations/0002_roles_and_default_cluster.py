from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):
    from deployments.roles import ROLE_PERMISSIONS

    # Permissions are normally created after all migrations; roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="deployments", codename__in=codenames)
        )


def create_default_cluster(apps, schema_editor):
    # The seed's Minikube (section 8): 4 CPUs, 8 GiB; kubeconfig from $KUBECONFIG.
    Cluster = apps.get_model("deployments", "Cluster")
    Cluster.objects.get_or_create(
        name="minikube",
        defaults={"minikube_profile": "minikube", "capacity_cpus": 4, "capacity_memory": "8Gi"},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
        migrations.RunPython(create_default_cluster, migrations.RunPython.noop),
    ]
