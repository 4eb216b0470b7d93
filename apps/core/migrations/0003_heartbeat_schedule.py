"""The heartbeat schedule: a django-q2 cluster's scheduler moves it forward every minute, which is how /health
knows a cluster is alive (the web process cannot see the workers otherwise)."""

from django.db import migrations
from django.utils import timezone

NAME = "yokeflow-heartbeat"


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(name=NAME, defaults={
        "func": "apps.core.jobs.heartbeat", "schedule_type": "I", "minutes": 1, "repeats": -1,
        "next_run": timezone.now()})


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("core", "0002_auditevent"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(create, remove)]
