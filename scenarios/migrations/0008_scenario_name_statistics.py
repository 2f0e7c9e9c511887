"""A finer sample of scenario names for the planner.

``GET /scenario/?name=`` is ``name ILIKE '%...%'``. PostgreSQL estimates such a pattern from the
column's histogram only when it is large; with the default (100 entries) it fell back to a 1%
guess, and on a big table the planner then sometimes read the newest-first index in full,
filtering names, rather than the trigram index (tests/scenarios/test_list_delete.py). A
histogram of 1000 entries gives it an estimate near the real count.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("scenarios", "0007_scenario_frames_skipped")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE scenarios_scenario ALTER COLUMN name SET STATISTICS 1000",
            "ALTER TABLE scenarios_scenario ALTER COLUMN name SET STATISTICS -1",
        )
    ]
