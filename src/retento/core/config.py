"""All configuration in one object, read from RETENTO_* environment variables (and `.env`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from retento.core.dates import AwareDatetime
from retento.core.ssrf import AllowList


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETENTO_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///./retento.db",
        description="SQLAlchemy URL. Embedded default: SQLite file; production: "
        "postgresql+psycopg://user@host/db",
    )
    host: str = Field("127.0.0.1", description="Address `retento serve` / `retento run` listens on")
    port: int = Field(8000, description="Port `retento serve` / `retento run` listens on")
    default_region: str = Field("RU", description="Region for phone numbers written without +country code")
    default_currency: str = Field("RUB", description="Currency of sites created without one")
    worker_poll_seconds: float = Field(1.0, gt=0, description="How often an idle worker looks for work")
    worker_periodic_seconds: float = Field(
        1.0, ge=0, description="How often a busy worker asks a periodic job (deliveries, refreshes, purges) that "
        "found nothing the last time"
    )
    event_batch_size: int = Field(2000, gt=0, description="Events a subscriber handles per transaction")
    event_max_attempts: int = Field(
        10, gt=0, description="Failed deliveries of one event to one subscriber before it is dead-lettered"
    )
    history_page_size: int = Field(100, gt=0, le=1000, description="Default page size of history reads")
    segment_batch_size: int = Field(1000, gt=0, description="Queued customers re-evaluated per transaction")
    segment_refresh_minutes: int = Field(
        60, gt=0, description="How often segments with time windows (\"within 30 days\") are recomputed")
    rfm_refresh_hours: int = Field(
        24, gt=0, description="How often RFM scores and the lifecycle threshold are recomputed")
    cohort_refresh_minutes: int = Field(
        60, gt=0, description="How often the worker recomputes the lifecycle cohort report the console shows")
    cohort_inline_buyers: int = Field(
        5000, ge=0, description="A site with up to this many buyers has its first cohort report computed on the "
        "console's request; a larger one's is computed by the worker (the page says so meanwhile)")
    loyalty_expiry_part: int = Field(
        100_000, gt=0, description="The loyalty expiry run burns the accounts in parts of this many account ids, "
        "each part its own transaction (a charge waits for one part at most)")
    loyalty_expiry_connections: int = Field(
        2, gt=0, description="PostgreSQL: parts of the loyalty expiry run written at once, each on its own "
        "connection (the database server's cores do the work)")
    sql_echo: bool = Field(False, description="Log every SQL statement")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Level of the processes' logs: DEBUG adds a line per message sent and per HTTP request")
    gc_threshold: int = Field(
        50_000, ge=0, description="Allocations between collections of Python's youngest GC generation in Retento's "
        "processes (Python's default is 700; bulk work creates many short-lived objects). 0 keeps Python's default",
    )
    api_rate_per_second: float = Field(50.0, gt=0, description="API key rate limit: tokens added per second")
    api_rate_burst: int = Field(100, gt=0, description="API key rate limit: bucket size (requests in a burst)")
    api_key_cache_seconds: float = Field(
        5.0, ge=0, description="How long an API process trusts a key it looked up (a revoked key works this long)"
    )
    api_idempotency_hours: int = Field(24, gt=0, description="How long a POST's Idempotency-Key is remembered")
    api_max_body_bytes: int = Field(
        32 * 1024 * 1024, gt=0, description="Largest request body the API reads; a larger one is answered 413")
    compat_timezone: str = Field(
        "Europe/Moscow", description="Time zone of 'Y-m-d H:i:s' times in the RetailCRM-compatible API (/api/v5)"
    )
    webhook_max_attempts: int = Field(8, gt=0, description="Delivery attempts of one webhook before it is given up")
    webhook_backoff_seconds: float = Field(30.0, gt=0, description="Delay before the first webhook retry; doubles")
    webhook_backoff_max_seconds: float = Field(6 * 3600.0, gt=0, description="Longest delay between webhook retries")
    webhook_disable_after: int = Field(
        20, gt=0, description="Consecutive failed webhook attempts after which a subscription is disabled"
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one webhook HTTP request")
    outgoing_allow: str = Field(
        "", description="Hosts and networks webhooks may call although the SSRF policy refuses them (loopback, "
        "private, link-local, ...): comma-separated host names, addresses and CIDR networks, e.g. "
        "`hooks.lan, 127.0.0.1, 10.1.0.0/16`. A host name allows that name whatever it resolves to; an address "
        "or network allows the addresses in it")
    frozen_now: AwareDatetime | None = Field(
        None, description="Testing only: an ISO time (with an offset) the clock stays at (read by bootstrap, e.g. "
        "for worker processes)"
    )
    trigger_max_depth: int = Field(
        5, ge=1, le=100, description="Longest chain of trigger-caused changes; deeper events are not reacted to"
    )
    console_session_hours: float = Field(12.0, gt=0, description="How long a console sign-in lasts")
    console_dry_run_step: int = Field(
        500, gt=0, description="Inputs a console dry run evaluates per request (its progress is shown between them)")
    console_password_time_cost: int = Field(3, ge=1, description="Argon2id passes over memory per password hash")
    console_password_memory_kib: int = Field(
        65536, ge=8, description="Argon2id memory per password hash, KiB (tests lower it; keep the default in use)")
    console_secure_cookies: bool = Field(
        False, description="Mark console cookies Secure (set when the console is served over HTTPS)")
    trigger_timer_batch: int = Field(500, gt=0, description="Due delayed trigger runs a worker claims per transaction")

    @field_validator("outgoing_allow")
    @classmethod
    def _allow_list(cls, v: str) -> str:
        AllowList.parse(v)  # a ValueError names the wrong entry
        return v


@lru_cache
def get_settings() -> Settings:
    return Settings()
