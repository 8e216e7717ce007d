"""shared/enactor.py: the actuator protocol, and the applier's actuators match it."""

from __future__ import annotations

import inspect
from typing import Any, get_type_hints

import pytest

from services.applier.actuators import CgroupLimits, GpuPowerLimit, PoolEnactor, ProcessLimits
from shared.enactor import Enactor
from shared.messages import ActuatorResult, ScalingDecision

CONTRACT = {"d": ScalingDecision, "return": ActuatorResult}


def test_the_protocol_is_one_enact_method() -> None:
    assert get_type_hints(Enactor.enact) == CONTRACT
    own = {n for n in vars(Enactor) if not n.startswith("_")}
    assert own == {"enact"}


@pytest.mark.parametrize("cls", [PoolEnactor, CgroupLimits, ProcessLimits, GpuPowerLimit])
def test_actuators_implement_it(cls: type[Any]) -> None:
    hints = get_type_hints(cls.enact)
    params = list(inspect.signature(cls.enact).parameters)
    assert params[0] == "self" and len(params) == 2
    assert hints[params[1]] is ScalingDecision and hints["return"] is ActuatorResult
