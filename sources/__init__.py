"""Video sources: one class per scheme, and the decoder that opens exactly what was checked.

A scenario's source is attacker-controlled input (docs/SECURITY.md). Every class here checks
its URL when the scenario is created (``validate``) and again when it is opened
(``target``), and hands the decoder a target whose every connection goes only to an address
that passed the host lists at that moment: HTTP(S) through a pinned client of our own (FFmpeg
never opens a socket for it, HLS segments and keys included), RTSP through a relay on loopback
that connects to the checked address and refuses redirects.
"""

from sources.base import Source, SourceError, Target
from sources.registry import SCHEMES, source_for

__all__ = ["SCHEMES", "Source", "SourceError", "Target", "source_for"]
