from django.db import migrations


def create_roles(apps, schema_editor):
    from deployments.roles import create_roles

    create_roles(apps, schema_editor)  # the admin role gets view/change of API tokens


class Migration(migrations.Migration):
    dependencies = [("deployments", "0007_api_token")]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
