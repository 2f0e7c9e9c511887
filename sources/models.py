"""Who stored which upload: an upload is its owner's (and staff's) alone."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Upload(models.Model):
    """A video stored by POST /video/. Written in the same transaction as the file is saved
    (videos/services.py ``video_store``); the sum of a user's sizes is their quota use."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads"
    )
    # The source POST /video/ answered: "uploads/<name>" (video root) or "s3://bucket/key".
    source = models.CharField(max_length=2048, unique=True)
    size = models.BigIntegerField(help_text="Bytes.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return self.source
