from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scenarios", "0006_partition_predictions_events_by_day"),
    ]

    operations = [
        migrations.AddField(
            model_name="scenario",
            name="frames_skipped",
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
