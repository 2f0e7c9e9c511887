# The worker stack of the integration tests (beat, orchestrator, runners, mock inference), for
# the dashboard's browser test.
from tests.integration.conftest import live, stack

__all__ = ["live", "stack"]
