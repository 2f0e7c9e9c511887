"""What boxes mean: tracks, zones, lines and the events they make, one engine per scenario.

Pure logic over the detections of a scenario's frames, in frame order; no database, no
Redis. The runner feeds it and saves its state with every publish, so that a runner that
takes over resumes exactly where the last publish left it (docs/ANALYTICS.md).
"""
