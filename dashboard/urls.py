from django.urls import path

from dashboard import views

urlpatterns = [
    path("", views.index, name="dashboard"),
    path("login/", views.DashboardLoginView.as_view(), name="login"),
    path("logout/", views.DashboardLogoutView.as_view(), name="logout"),
    path("dashboard/state/", views.state, name="dashboard-state"),
    path("dashboard/<uuid:scenario_id>/stop/", views.stop, name="dashboard-stop"),
    path("dashboard/<uuid:scenario_id>/start/", views.start, name="dashboard-start"),
    path("dashboard/<uuid:scenario_id>/delete/", views.delete, name="dashboard-delete"),
]
