"""CPU quotas for benchmark processes: each process in a cgroup of its own, allowed a share of one core.

On a 2-core machine the processes a benchmark measures share the cores with everything else (the upstream, nginx,
the measuring client), so adding a replica cannot show what it buys: the machine is the bottleneck. With each
replica held to, say, 0.4 of a core, the replicas are the bottleneck, and 1, 2 and 3 of them (1.2 cores) still
leave the rest room to run.

Either cgroup hierarchy: v2 (`cpu.max`, when /sys/fs/cgroup/cgroup.controllers offers `cpu`) or v1's `cpu`
controller (`cpu.cfs_period_us` and `cpu.cfs_quota_us`), found in /proc/self/mounts. Writing them needs root.
Where neither is writable, `CpuQuotas.reason` says so in one sentence and commands run unconfined.

Every group made is removed when the block ends, also after Ctrl-C or SIGTERM (any process still in it moved back
to the root group first); groups left by a run killed outright (SIGKILL) are removed by the next run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

PERIOD_US = 100_000  # the kernel's default period: a quota of 0.4 core is 40 ms of CPU in every 100 ms
PREFIX = "switchboard-bench-"  # + the pid of the run that made the group + a name


class CpuQuotas:
    """`with CpuQuotas(0.4) as quotas:` then `quotas.confined(command, "name")` is `command` started in a group
    of its own, held to 0.4 of a core (children included). Unconfined where no cgroup is writable."""

    def __init__(self, cores: float) -> None:
        if cores <= 0:
            raise ValueError(f"a CPU quota is a positive share of a core, not {cores}")
        self.cores = cores
        self.root, self.version, self.reason = find_hierarchy()
        self.groups: list[Path] = []
        self._restore_sigterm: Callable[[], object] | None = None

    @property
    def available(self) -> bool:
        return self.root is not None

    def __enter__(self) -> CpuQuotas:
        if self.root is not None:
            remove_stale_groups(self.root)
            self._restore_sigterm = _exit_on_sigterm()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with _signals_held():  # a second Ctrl-C must not leave groups behind
            for group in reversed(self.groups):
                remove_group(group)
            self.groups.clear()
        if self._restore_sigterm is not None:
            self._restore_sigterm()
            self._restore_sigterm = None

    def confined(self, command: list[str], name: str) -> list[str]:
        """`command` run in a new group held to the quota: a shell puts itself in the group, then becomes the
        command (exec), so the process is confined from its first instruction and its pid is the command's."""
        if self.root is None:
            return command
        group = self.root / f"{PREFIX}{os.getpid()}-{name}"
        group.mkdir()
        self.groups.append(group)
        quota = round(self.cores * PERIOD_US)
        if self.version == 2:
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group / "cgroup.procs"), *command]

    def describe(self) -> str:
        """One sentence on what the quotas are, or why there are none."""
        if self.root is None:
            return f"no CPU quotas: {self.reason}"
        return f"each in a cgroup (v{self.version}) held to {self.cores:g} of a core"


def find_hierarchy() -> tuple[Path | None, int, str]:
    """(where to make groups, cgroup version, "") for a writable cpu controller, else (None, 0, why not)."""
    unified = Path("/sys/fs/cgroup")
    with contextlib.suppress(OSError):
        if "cpu" in (unified / "cgroup.controllers").read_text().split():
            if not os.access(unified, os.W_OK):
                return None, 0, f"{unified} (cgroup v2) is not writable by this user (root is needed)"
            if "cpu" not in (unified / "cgroup.subtree_control").read_text().split():
                try:
                    (unified / "cgroup.subtree_control").write_text("+cpu")
                except OSError as error:
                    return None, 0, f"cgroup v2's cpu controller cannot be enabled for new groups ({error})"
            return unified, 2, ""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mount_point, kind, options, *_ = line.split()
        if kind == "cgroup" and "cpu" in options.split(","):
            if not os.access(mount_point, os.W_OK):
                return None, 0, f"{mount_point} (cgroup v1) is not writable by this user (root is needed)"
            return Path(mount_point), 1, ""
    return None, 0, "this machine offers no cgroup cpu controller"


def remove_group(group: Path, timeout: float = 5.0) -> None:
    """Move whatever still runs in `group` to the root group, then remove it (a process that has just exited
    can keep it busy for a moment)."""
    root_procs = group.parent / "cgroup.procs"
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError):
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, OSError):
                    root_procs.write_text(pid)
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def remove_stale_groups(root: Path) -> None:
    """Remove the groups of earlier runs whose process is gone (killed with no chance to clean up)."""
    for group in root.glob(f"{PREFIX}*"):
        owner = group.name.removeprefix(PREFIX).split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            remove_group(group)


def _exit_on_sigterm() -> Callable[[], object] | None:
    """SIGTERM raises SystemExit, as Ctrl-C raises KeyboardInterrupt, so `finally` blocks run and groups go.
    Returns what puts the previous handler back; None off the main thread (where Python cannot set handlers)."""

    def leave(number: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + number)

    try:
        previous = signal.signal(signal.SIGTERM, leave)
    except ValueError:
        return None
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM ignored for the block (on the main thread), so a clean-up runs to its end."""
    try:
        previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
