"""Insights: anomalies and exhaustion forecasts of related series become a few explained
findings (what is wrong, since when, the likely cause, what to do).  See docs/insights.md."""

from vigil.insights.build import BuildResult, InsightConfig, build_insights
from vigil.insights.evaluate import evaluate_insights
from vigil.insights.feedback import sensitivity_factors
from vigil.insights.model import (
    Insight,
    insight_from_json,
    insight_to_json,
    insights_from_json,
    insights_to_json,
)
from vigil.insights.pipeline import PipelineResult, run_pipeline

__all__ = [
    "BuildResult",
    "Insight",
    "InsightConfig",
    "PipelineResult",
    "build_insights",
    "evaluate_insights",
    "insight_from_json",
    "insight_to_json",
    "insights_from_json",
    "insights_to_json",
    "run_pipeline",
    "sensitivity_factors",
]
