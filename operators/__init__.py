"""Airflow side of domainllm: thin operators that build launch requests and hand them
to a launcher. No torch, no data processing here."""

from domainllm_operators.approval import RolloutApprovalOperator
from domainllm_operators.flywheel import TriggerTrainingOperator
from domainllm_operators.gate import GateOperator
from domainllm_operators.rollout import RolloutOperator
from domainllm_operators.stage import PipelineRunOperator, ShardPlanOperator, StageOperator

__all__ = ["GateOperator", "PipelineRunOperator", "RolloutApprovalOperator", "RolloutOperator", "ShardPlanOperator",
           "StageOperator", "TriggerTrainingOperator"]  # fmt: skip
