import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("domains", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="MemorySample",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("at", models.DateTimeField()),
                ("resolution", models.PositiveSmallIntegerField(default=0)),
                ("memory_kib", models.BigIntegerField()),
                ("actual_kib", models.BigIntegerField(null=True)),
                ("used_kib", models.BigIntegerField(null=True)),
                ("available_kib", models.BigIntegerField(null=True)),
                (
                    "domain",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="domains.domain",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["domain", "at"], name="domains_mem_domain__e0b8a4_idx"),
                    models.Index(fields=["resolution", "at"], name="domains_mem_resolut_5b1f0e_idx"),
                ],
            },
        ),
    ]
