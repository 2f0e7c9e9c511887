from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from misis.health import HealthApi
from misis.metrics import MetricsApi

# The schema and its browser are public; every API endpoint keeps its own token auth.
_public = {"authentication_classes": [], "permission_classes": [AllowAny]}

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", HealthApi.as_view(), name="health"),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(**_public), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", **_public),
        name="swagger-ui",
    ),
    path("", include("scenarios.urls")),
    path("", include("videos.urls")),
    path("", include("dashboard.urls")),
]
