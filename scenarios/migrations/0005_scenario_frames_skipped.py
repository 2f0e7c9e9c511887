from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scenarios", "0004_analytics_events"),
    ]

    operations = [
        migrations.AddField(
            model_name="scenario",
            name="frames_skipped",
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
