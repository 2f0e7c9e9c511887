from django.urls import path

from scenarios import apis

urlpatterns = [
    path("scenario/", apis.ScenarioCreateApi.as_view(), name="scenario-create"),
    path("scenario/<str:scenario_id>/", apis.ScenarioDetailApi.as_view(), name="scenario-detail"),
    path("prediction/<str:scenario_id>/", apis.PredictionListApi.as_view(), name="prediction-list"),
]
