from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from sources.onvif_discovery import WS_DISCOVERY_ADDRESS, WS_DISCOVERY_PORT, discover


class Command(BaseCommand):
    help = (
        "Find ONVIF cameras on the local network (WS-Discovery Probe for "
        "NetworkVideoTransmitter) and print the onvif:// source to use for each."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=3.0, help="seconds to wait for answers (default 3)"
        )
        parser.add_argument(
            "--address",
            default=WS_DISCOVERY_ADDRESS,
            help="where to send the probe: the WS-Discovery multicast group (default) "
            "or one camera's address",
        )
        parser.add_argument("--port", type=int, default=WS_DISCOVERY_PORT)
        parser.add_argument(
            "--interface", help="IPv4 address of the local interface to send the multicast from"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        address, port, timeout = options["address"], options["port"], options["timeout"]
        self.stdout.write(f"Probing {address}:{port} for {timeout:g} s ...")
        cameras = discover(timeout, address=address, port=port, interface=options["interface"])
        for camera in cameras:
            label = " ".join(
                f"{kind}={value}"
                for kind in ("name", "hardware", "location")
                if (value := camera.scope(kind))
            )
            self.stdout.write(f"\n{camera.endpoint}  {label}".rstrip())
            self.stdout.write(f"  XAddrs: {' '.join(camera.xaddrs) or '-'}")
            self.stdout.write(f"  Scopes: {' '.join(camera.scopes) or '-'}")
            self.stdout.write(f"  source: {camera.source or '(no http XAddr)'}")
        if cameras:
            self.stdout.write(
                f"\n{len(cameras)} camera(s). Put user:password@ after onvif:// "
                "and append /<profile-token> to choose a stream."
            )
        else:
            self.stdout.write("No ONVIF camera answered.")
