"""Operator pages: who stored which upload. Staff may hand an upload (one stored before uploads
had owners, say) to a user by changing its owner."""

from __future__ import annotations

from django.contrib import admin

from sources.models import Upload


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin[Upload]):
    list_display = ("source", "owner", "size", "created_at")
    list_select_related = ("owner",)
    search_fields = ("source", "owner__username")
    raw_id_fields = ("owner",)
    readonly_fields = ("source", "size", "created_at")
