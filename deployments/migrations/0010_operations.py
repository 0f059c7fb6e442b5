# Issue 15: operating what runs (sleep, scale), teardown releases, pod host IPs, Ingress.

from django.db import migrations, models

import deployments.validators


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0009_deploy_webhooks"),
    ]

    operations = [
        migrations.AddField(
            model_name="component",
            name="ingress_class",
            field=models.CharField(
                default="nginx",
                max_length=253,
                validators=[deployments.validators.validate_ingress_class],
            ),
        ),
        migrations.AddField(
            model_name="component",
            name="ingress_host",
            field=models.CharField(
                blank=True,
                max_length=253,
                validators=[deployments.validators.validate_ingress_host],
            ),
        ),
        migrations.AddField(
            model_name="component",
            name="ingress_path",
            field=models.CharField(
                default="/",
                max_length=1024,
                validators=[deployments.validators.validate_ingress_path],
            ),
        ),
        migrations.AddField(
            model_name="component",
            name="ingress_tls_secret",
            field=models.CharField(
                blank=True,
                max_length=253,
                validators=[deployments.validators.validate_tls_secret_name],
            ),
        ),
        migrations.AddField(
            model_name="component",
            name="scaled_replicas",
            field=models.PositiveSmallIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="podstate",
            name="host_ip",
            field=models.CharField(blank=True, max_length=45),
        ),
        migrations.AddField(
            model_name="profile",
            name="asleep_by",
            field=models.CharField(blank=True, editable=False, max_length=150),
        ),
        migrations.AddField(
            model_name="profile",
            name="asleep_since",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="profile",
            name="sleep_replicas",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name="release",
            name="kind",
            field=models.CharField(
                choices=[("deploy", "deploy"), ("rollback", "rollback"), ("teardown", "teardown")],
                default="deploy",
                max_length=16,
            ),
        ),
    ]
