from django.urls import path

from scenarios import apis, event_apis, preview_views

urlpatterns = [
    path("scenario/", apis.ScenarioListCreateApi.as_view(), name="scenario-create"),
    path("scenario/<str:scenario_id>/", apis.ScenarioDetailApi.as_view(), name="scenario-detail"),
    path(
        "scenario/<str:scenario_id>/frame.jpg",
        preview_views.ScenarioFrameApi.as_view(),
        name="scenario-frame",
    ),
    path(
        "scenario/<str:scenario_id>/view/",
        preview_views.ScenarioPreviewPage.as_view(),
        name="scenario-preview",
    ),
    path(
        "scenario/<str:scenario_id>/view/state/",
        preview_views.ScenarioStateApi.as_view(),
        name="scenario-preview-state",
    ),
    path("prediction/<str:scenario_id>/", apis.PredictionListApi.as_view(), name="prediction-list"),
    path("event/<str:scenario_id>/", event_apis.EventListApi.as_view(), name="event-list"),
    path(
        "event/<str:scenario_id>/<str:seq>/snapshot.jpg",
        event_apis.EventSnapshotApi.as_view(),
        name="event-snapshot",
    ),
]
