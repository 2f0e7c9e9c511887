from django.urls import path

from videos import apis

urlpatterns = [
    path("video/", apis.VideoUploadApi.as_view(), name="video-upload"),
]
