from django.db import migrations


def create_roles(apps, schema_editor):
    from deployments.roles import create_roles

    # Permissions are normally created after all migrations; roles need them now.
    create_roles(apps, schema_editor)


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
