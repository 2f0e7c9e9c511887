"""Real media servers started as child processes: an RTSP camera (GStreamer), an HTTP server
(MJPEG, HLS, files with Range), and a fake ONVIF device (in-process)."""
