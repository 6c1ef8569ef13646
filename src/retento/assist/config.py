"""Assist settings (RETENTO_* env)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AssistSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETENTO_", env_file=".env", extra="ignore")

    assist_threads: int = Field(1, ge=1, le=64, description="Threads of the embedding model. More than one helps "
                                "only on an idle machine: on a busy one its threads wait on each other (2 threads "
                                "took 2 s a query where 1 took 0.15 s at load 12 on 2 cores)")
