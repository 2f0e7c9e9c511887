from django.contrib.admin.apps import AdminConfig


class MisisAdminConfig(AdminConfig):
    """django.contrib.admin with MisisAdminSite as ``admin.site`` (a throttled login)."""

    default_site = "misis.admin_site.MisisAdminSite"
