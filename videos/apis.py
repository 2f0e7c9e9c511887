"""POST /video/: upload a video file, get back the source to start scenarios on."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scenarios.serializers import ErrorSerializer
from videos import content, services


class VideoUploadSerializer(serializers.Serializer[None]):  # input only: no instance
    file = serializers.FileField(
        allow_empty_file=False,
        use_url=False,
        help_text="The video file. Its name must end in one of "
        + ", ".join(f".{e}" for e in content.VIDEO_EXTENSIONS)
        + " and its content must be a video FFmpeg decodes; anything else is a 400.",
    )


class VideoSerializer(serializers.Serializer[services.StoredVideo]):
    # A declared field (the metaclass moves it into _declared_fields); the DRF stubs take the
    # name for the class attribute Field.source.
    source = serializers.CharField(  # type: ignore[assignment]
        help_text="The stored video, as `source` for POST /scenario/: a path in the video root,"
        " or s3://bucket/key when videos are kept in S3."
    )
    size = serializers.IntegerField(help_text="Bytes.")
    frames = serializers.IntegerField(help_text="Frames in the video (as its container says).")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    fps = serializers.FloatField(help_text="Frames per second (as its container says).")


FILE_ERROR = OpenApiResponse(
    response={
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "description": "The offending field (`file`), with what is wrong with it.",
    },
    description="Bad input: no file, an empty file, a file name without a video extension,"
    " content that is not a video, frames over MISIS_MAX_FRAME_PIXELS.",
    examples=[
        OpenApiExample(
            "not a video",
            value={"file": [content.NOT_A_VIDEO]},
            response_only=True,
            status_codes=["400"],
        )
    ],
)


class VideoUploadApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="video_upload",
        summary="Upload a video",
        description="Stores a video file (multipart/form-data, field `file`) in the object"
        " storage: the filesystem under the video root, or S3 when it is configured. The answer's"
        " `source` starts scenarios on it (POST /scenario/). The content must be a video FFmpeg"
        " decodes, with frames of at most `MISIS_MAX_FRAME_PIXELS` pixels; files above"
        " `MISIS_UPLOAD_MAX_BYTES` (default 2 GiB), or above what is left of the user's"
        " `MISIS_QUOTA_UPLOAD_BYTES` (default 20 GiB, all their uploads together), are refused"
        " with 413. The source is the uploader's: scenarios of other users cannot name it.",
        tags=["videos"],
        request={"multipart/form-data": VideoUploadSerializer},
        responses={
            201: OpenApiResponse(VideoSerializer, description="Stored."),
            400: FILE_ERROR,
            401: OpenApiResponse(ErrorSerializer, description="No token, or a wrong one."),
            413: OpenApiResponse(
                FILE_ERROR.response,
                description="The file is larger than the upload limit, or than what is left of"
                " the user's upload quota.",
            ),
            429: OpenApiResponse(ErrorSerializer, description="Too many requests."),
            503: OpenApiResponse(
                ErrorSerializer,
                description="The object storage refused the credentials or did not answer.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        # Before request.data: a body over the limit is refused without being received.
        services.video_check_size(content_length=request.META.get("CONTENT_LENGTH"))
        services.video_check_quota(
            user=request.user, content_length=request.META.get("CONTENT_LENGTH")
        )
        data = VideoUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        video = services.video_store(file=data.validated_data["file"], user=request.user)
        return Response(VideoSerializer(video).data, status=http.HTTP_201_CREATED)
