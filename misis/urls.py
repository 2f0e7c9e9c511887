from django.contrib import admin
from django.urls import include, path

from misis.health import HealthApi

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", HealthApi.as_view(), name="health"),
    path("", include("scenarios.urls")),
]
