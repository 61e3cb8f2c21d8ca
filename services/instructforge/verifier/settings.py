"""Settings of the verifier service (env prefix `IFORGE_VERIFIER_`).

Isolation is found at start-up (``isolation_mode = auto`` tries the strongest mode first); forcing a
mode that this machine cannot give fails start-up instead of silently running weaker. Limits
default to ``default_limits`` and callers may ask for up to ``max_limits``
(`IFORGE_VERIFIER_MAX_LIMITS__TIMEOUT_MS=…`, `--max-limits-timeout-ms …`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from instructforge.runtime.errors import InvalidArgument
from instructforge.runtime.settings import ServiceSettings

from .isolation import IsolationOptions
from .limits import LimitPolicy, Limits
from .verifier import VerifierOptions

_D, _M = LimitPolicy().default, LimitPolicy().maximum


class LimitSettings(BaseModel):
    model_config = {"extra": "forbid"}

    timeout_ms: int = Field(_D.timeout_ms, gt=0, description="wall-clock time of a whole execution")
    cpu_time_ms: int = Field(_D.cpu_time_ms, ge=0, description="CPU time per process; 0 = timeout + 1 s")
    memory_bytes: int = Field(_D.memory_bytes, gt=0, description="address space per process")
    output_bytes: int = Field(_D.output_bytes, gt=0, description="stdout + stderr before OUTPUT_LIMIT")
    max_processes: int = Field(_D.max_processes, gt=0, description="processes and threads at once")
    file_size_bytes: int = Field(_D.file_size_bytes, gt=0, description="largest file a program may write")
    open_files: int = Field(_D.open_files, gt=0, description="open file descriptors per process")

    def limits(self) -> Limits:
        return Limits(**self.model_dump())


def _maxima() -> LimitSettings:
    return LimitSettings(**{k: getattr(_M, k) for k in LimitSettings.model_fields})


class VerifierSettings(ServiceSettings):
    service_name: ClassVar[str] = "verifier"
    default_port: ClassVar[int] = 50053
    default_metrics_port: ClassVar[int] = 9093

    model_config = SettingsConfigDict(env_prefix="IFORGE_VERIFIER_")

    isolation_mode: Literal["auto", "bwrap-root", "bwrap-userns", "plain-root", "plain"] = Field(
        "auto", description="sandbox mode; auto picks the strongest one that works here")
    bwrap_path: str = Field("", description="bubblewrap binary; empty = bwrap on PATH")
    sandbox_python: str = Field("", description="interpreter inside the sandboxes; empty = this one, else a "
                                "system python3 the sandbox user can read")
    sandbox_uid_base: int = Field(60000, ge=1000, description="root modes: sandbox i runs programs as uid/gid "
                                  "base + i (keep this range free of real users)")
    sandbox_tmp_mb: int = Field(64, ge=4, description="size of each sandbox's private /tmp (tmpfs)")
    sandbox_shm_mb: int = Field(16, ge=1, description="size of each sandbox's private /dev/shm (tmpfs)")
    sandbox_work_root: str = Field("", description="without namespaces: where run directories live (must be "
                                   "reachable by the sandbox uids); empty = the system temp dir")
    seccomp: bool = Field(True, description="install the seccomp deny-list in every sandbox (x86_64)")
    sandbox_nice: int = Field(5, ge=0, le=19, description="niceness of programs, so the service stays responsive")
    pin_cpus: bool = Field(True, description="pin sandbox i to CPU i mod the CPUs this process may use")
    pool_size: int = Field(0, ge=0, le=256, description="sandboxes (executions at once); 0 = one per usable CPU")
    max_waiting: int = Field(64, ge=0, description="requests that may wait for a sandbox before "
                             "RESOURCE_EXHAUSTED")
    max_wait_s: float = Field(30.0, gt=0, description="longest wait for a sandbox (the call's deadline "
                              "shortens it)")
    max_runs_per_sandbox: int = Field(1000, ge=1, description="executions before a sandbox is replaced anyway")
    capture_bytes: int = Field(64 * 1024, ge=0, description="stdout/stderr bytes returned with each result")
    stream_in_flight: int = Field(0, ge=0, description="executions one ExecuteStream runs at once; 0 = twice "
                                  "the pool size")
    default_limits: LimitSettings = Field(default_factory=LimitSettings)
    max_limits: LimitSettings = Field(default_factory=_maxima)

    def verifier_options(self) -> VerifierOptions:
        isolation = IsolationOptions(
            mode=self.isolation_mode, bwrap_path=self.bwrap_path, python=self.sandbox_python,
            uid_base=self.sandbox_uid_base, tmp_size_mb=self.sandbox_tmp_mb, shm_size_mb=self.sandbox_shm_mb,
            seccomp=self.seccomp, nice=self.sandbox_nice, pin_cpus=self.pin_cpus, work_root=self.sandbox_work_root)
        try:
            policy = LimitPolicy(default=self.default_limits.limits(), maximum=self.max_limits.limits())
        except ValueError as exc:
            raise InvalidArgument(str(exc), field="default_limits") from None
        return VerifierOptions(
            isolation=isolation, pool_size=self.pool_size, max_waiting=self.max_waiting, max_wait_s=self.max_wait_s,
            max_runs_per_sandbox=self.max_runs_per_sandbox, capture_bytes=self.capture_bytes, limits=policy)
