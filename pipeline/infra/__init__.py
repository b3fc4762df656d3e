"""Local servers for development, tests and the demo: Apache Kafka (KRaft) and Triton, as processes.

These modules manage processes and files only; clients of the servers live in `pipeline.adapters`.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = PROJECT_ROOT / "deploy"
