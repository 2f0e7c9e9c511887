"""Indexes of GET /scenario/ (selectors.scenario_page): each filter and the newest-first order,
for an owner and for staff, and the trigram index behind ``?name=``.

Built CONCURRENTLY (not in a transaction) so that a deployed table keeps taking writes while
they build; pg_trgm is a trusted extension (PostgreSQL 13+), so the database owner may create it. The owner's single-column index goes: (owner, created_at, id)
serves every lookup by owner.
"""

import django.contrib.postgres.indexes
import django.db.models.deletion
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently, TrigramExtension
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("scenarios", "0004_analytics_events"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        TrigramExtension(),
        AddIndexConcurrently(
            model_name="scenario",
            index=models.Index(
                fields=["owner", "-created_at", "-id"], name="scenario_owner_list_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="scenario",
            index=models.Index(
                fields=["owner", "status", "-created_at", "-id"], name="scenario_owner_status_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="scenario",
            index=models.Index(
                fields=["status", "-created_at", "-id"], name="scenario_status_list_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="scenario",
            index=models.Index(fields=["-created_at", "-id"], name="scenario_list_idx"),
        ),
        AddIndexConcurrently(
            model_name="scenario",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["name"], opclasses=["gin_trgm_ops"], name="scenario_name_trgm_idx"
            ),
        ),
        # The owner's own index goes once (owner, created_at, id) is there to serve it.
        migrations.AlterField(
            model_name="scenario",
            name="owner",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="scenarios",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
