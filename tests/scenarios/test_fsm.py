"""Every transition of the contract's state machine, allowed and refused."""

from __future__ import annotations

import pytest
from django_fsm import TransitionNotAllowed

from scenarios.models import Status
from tests.factories import make_scenario

ALLOWED = {
    "begin_startup": {Status.INIT_STARTUP: Status.IN_STARTUP_PROCESSING},
    "activate": {Status.IN_STARTUP_PROCESSING: Status.ACTIVE},
    "request_shutdown": {
        Status.INIT_STARTUP: Status.INIT_SHUTDOWN,
        Status.IN_STARTUP_PROCESSING: Status.INIT_SHUTDOWN,
        Status.ACTIVE: Status.INIT_SHUTDOWN,
    },
    "begin_shutdown": {Status.INIT_SHUTDOWN: Status.IN_SHUTDOWN_PROCESSING},
    "finish_shutdown": {Status.IN_SHUTDOWN_PROCESSING: Status.INACTIVE},
    "request_startup": {Status.INACTIVE: Status.INIT_STARTUP},
}
CASES = [(name, source, ALLOWED[name].get(source)) for name in ALLOWED for source in list(Status)]


@pytest.mark.django_db
@pytest.mark.parametrize(("transition", "source", "target"), CASES)
def test_transition(transition: str, source: Status, target: Status | None) -> None:
    scenario = make_scenario(source)
    if target is None:
        with pytest.raises(TransitionNotAllowed):
            getattr(scenario, transition)()
        assert scenario.status == source
    else:
        getattr(scenario, transition)()
        scenario.save()
        scenario.refresh_from_db()
        assert scenario.status == target


def test_every_contract_edge_is_a_transition() -> None:
    edges = {(s, t) for table in ALLOWED.values() for s, t in table.items()}
    assert len(edges) == 8
    assert (Status.INACTIVE, Status.INIT_STARTUP) in edges
