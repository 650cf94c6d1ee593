"""Shared test configuration."""

from hypothesis import HealthCheck, settings

# Timing-based hypothesis deadlines are flaky on a shared 2-core machine; correctness only.
settings.register_profile(
    "vigil", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60
)
settings.load_profile("vigil")
