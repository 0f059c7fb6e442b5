from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):
    from deployments.roles import sync_roles

    # Permissions are normally created after all migrations; roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_roles(apps)


def create_default_cluster(apps, schema_editor):
    from deployments.roles import ensure_default_cluster

    ensure_default_cluster(apps)


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
