"""The audit log keeps its project as an id and a slug instead of a foreign key into the projects app.

The column `project_id` stays (only its foreign-key constraint goes), so no event loses its project; the slug each
event's project has now is copied into `project_label`, which a later deletion of the project no longer clears.
"""

from django.db import migrations, models


def copy_slugs(apps, schema_editor):
    AuditEvent = apps.get_model("core", "AuditEvent")
    Project = apps.get_model("projects", "Project")
    for pk, slug in Project.objects.values_list("pk", "slug"):
        AuditEvent.objects.filter(project_id=pk).update(project_label=slug)


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0004_audit_task_actions"),
        ("projects", "0006_project_network"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="auditevent", name="audit_project_created"),
        migrations.AddField(model_name="auditevent", name="project_label",
                            field=models.CharField(blank=True, max_length=63)),
        migrations.RunPython(copy_slugs, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterField(model_name="auditevent", name="project",
                                      field=models.BigIntegerField(blank=True, db_column="project_id", null=True)),
            ],
            state_operations=[
                migrations.RemoveField(model_name="auditevent", name="project"),
                migrations.AddField(model_name="auditevent", name="project_id",
                                    field=models.BigIntegerField(blank=True, db_column="project_id", null=True)),
            ],
        ),
        migrations.AddIndex(model_name="auditevent",
                            index=models.Index(fields=["project_id", "-created"], name="audit_project_created")),
    ]
