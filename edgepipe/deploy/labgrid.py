"""`labgrid://[COORDINATOR/]PLACE`: a board in a labgrid farm, acquired for a run and released after.

labgrid keeps boards as *places* on a coordinator; exporters on the hosts that hold the boards publish
their resources. edgepipe needs one resource from a place: a `NetworkService` (address, username,
port) — the board's SSH login (a Dev Board, or the host a USB Accelerator is plugged into). Everything
after that is edgepipe's own SSH transport (`SshTarget`), unchanged.

The coordinator is COORDINATOR when given (HOST:PORT), else $LG_COORDINATOR, else labgrid's default
127.0.0.1:20408. We use labgrid's Python client session (the one `labgrid-client` uses; install with
`pip install 'edgepipe[labgrid]'`), so acquisition is labgrid's own: the place shows as acquired by
HOST/USER in `labgrid-client who`. A place acquired by someone else is refused at once
(PlaceBusyError, exit 51) — we never wait for it; a place you already hold is used and left held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..errors import DeployError, PlaceBusyError, TargetSpecError
from .transport import DEFAULT_TIMEOUT_S, Delivery, RunResult, Shipment, SshTarget, TargetLifetime

DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's own default
CONNECT_TIMEOUT_S = 20.0
INSTALL_HINT = "Install labgrid: pip install 'edgepipe[labgrid]'"


class LabgridError(DeployError):
    """The coordinator is unreachable, the place does not exist, or it has no NetworkService."""


@dataclass
class LabgridTarget(TargetLifetime):
    """A labgrid place; inside `with target:` it behaves as the SshTarget of its NetworkService."""

    place: str
    coordinator: Optional[str] = None
    ssh_options: Dict[str, Any] = field(default_factory=dict)
    timeout: float = CONNECT_TIMEOUT_S
    ssh: Optional[SshTarget] = None
    acquired_here: bool = False
    _session: Any = None
    _loop: Any = None

    @classmethod
    def from_url(cls, url: str, **ssh_options: Any) -> LabgridTarget:
        rest = url[len("labgrid://"):].strip("/")
        coordinator, _, place = rest.rpartition("/")
        if not place or any(c.isspace() for c in rest):
            raise TargetSpecError(
                "cannot parse labgrid target %r" % url,
                hint="Write labgrid://PLACE or labgrid://HOST:PORT/PLACE (the coordinator; default $LG_COORDINATOR)",
            )
        return cls(place=place, coordinator=coordinator or None, ssh_options=dict(ssh_options))

    @property
    def address(self) -> str:
        return self.coordinator or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR

    def describe(self) -> str:
        where = "labgrid://%s" % self.place
        return "%s (%s)" % (where, self.ssh.describe()) if self.ssh is not None else where

    # --- the place's lifetime ---------------------------------------------------------------------

    def open(self) -> None:
        """Connect, acquire the place (unless it is already ours), and find its NetworkService."""
        try:
            from labgrid.remote.client import ClientSession
            from labgrid.remote.client import Error as LabgridClientError
        except ImportError:
            raise LabgridError("labgrid://%s needs labgrid, which is not installed" % self.place,
                               hint=INSTALL_HINT) from None  # fmt: skip
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)  # grpc.aio binds the channel to the current loop when it is made
        session = ClientSession(self.address, self._loop)
        self._session = session
        try:
            self._await(session.start(), "connecting to the coordinator")
        except (asyncio.TimeoutError, LabgridClientError, OSError) as exc:
            self._shutdown()
            raise LabgridError(
                "labgrid coordinator %s did not answer (%s)" % (self.address, _why(exc)),
                hint="Check that labgrid-coordinator runs there, or name it: labgrid://HOST:PORT/%s or $LG_COORDINATOR"
                % self.place,
            ) from None
        try:
            self._acquire(session, LabgridClientError)
            self.ssh = self._ssh_target(session)
        except BaseException:
            self.close()
            raise

    def disconnect(self) -> None:
        """End the SSH login's shared connection (deploy does at its end); the place stays held."""
        if self.ssh is not None:
            self.ssh.disconnect()

    def close(self) -> None:
        """Release the place if we acquired it, then disconnect. Safe to call twice."""
        self.disconnect()
        session = self._session
        if session is None:
            return
        try:
            if self.acquired_here:
                session.args = argparse.Namespace(place=self.place, kick=False)
                with contextlib.redirect_stdout(sys.stderr):  # labgrid prints "released place X"
                    self._await(session.release(), "releasing the place")
                self.acquired_here = False
        except Exception as exc:  # the run's own result matters more; say what is left behind
            sys.stderr.write("warning: releasing labgrid place %s failed: %s (release it with "
                             "labgrid-client -p %s release)\n" % (self.place, _why(exc), self.place))  # fmt: skip
        finally:
            self._shutdown()

    def _await(self, coroutine: Any, doing: str) -> Any:
        with _quiet_root_logger():
            return self._loop.run_until_complete(asyncio.wait_for(coroutine, self.timeout))

    def _shutdown(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.wait_for(session.stop(), 5))
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.wait_for(session.close(), 5))
        if self._loop is not None:
            self._loop.close()
            self._loop = None
            asyncio.set_event_loop(None)

    def _place(self, session: Any) -> Any:
        place = session.places.get(self.place)
        if place is None:
            known = ", ".join(sorted(session.places)) or "none"
            raise LabgridError(
                "labgrid coordinator %s has no place %r (places: %s)" % (self.address, self.place, known),
                hint="Create it (labgrid-client -p %s create, then add-match) or fix the name" % self.place,
            )
        return place

    def _acquire(self, session: Any, client_error: type) -> None:
        place = self._place(session)
        me = "%s/%s" % (session.gethostname(), session.getuser())
        if place.acquired and place.acquired != me:
            raise _busy(self.place, place.acquired)
        if place.acquired == me:
            return  # held already (e.g. `labgrid-client acquire` before a pytest run): use it, leave it held
        session.args = argparse.Namespace(place=self.place, allow_unmatched=False)
        try:
            with contextlib.redirect_stdout(sys.stderr):  # labgrid prints "acquired place X"
                self._await(session.acquire(), "acquiring the place")
        except client_error as exc:
            holder = self._place(session).acquired
            if holder and holder != me:  # someone else was faster
                raise _busy(self.place, holder) from None
            raise LabgridError("cannot acquire labgrid place %s: %s" % (self.place, _why(exc))) from None
        except asyncio.TimeoutError:
            raise LabgridError("labgrid coordinator %s did not acquire %s within %.0f s"
                               % (self.address, self.place, self.timeout)) from None  # fmt: skip
        self.acquired_here = True

    def _ssh_target(self, session: Any) -> SshTarget:
        resources = session.get_target_resources(self._place(session))
        services: List[Any] = [r for (_, cls), r in resources.items() if cls == "NetworkService"]
        if not services:
            kinds = ", ".join(sorted({cls for (_, cls) in resources})) or "none"
            raise LabgridError(
                "labgrid place %s has no NetworkService (its resources: %s)" % (self.place, kinds),
                hint="Export the board's SSH login as a NetworkService (see device_tests/labgrid/) and add-match it",
            )
        service = services[0]
        if not service.avail:
            raise LabgridError("the NetworkService of labgrid place %s is not available (its exporter is gone?)"
                               % self.place)  # fmt: skip
        args = service.args
        address = str(args["address"]).split("%")[0]  # an interface suffix (fe80::1%eth0) is for labgrid's proxy
        return SshTarget(host=address, user=args.get("username") or None, port=int(args.get("port") or 22),
                         **self.ssh_options)  # fmt: skip

    # --- the transport: the place's SSH login ------------------------------------------------------

    def _target(self) -> SshTarget:
        if self.ssh is None:
            raise LabgridError("labgrid place %s is used outside `with target:` (not acquired)" % self.place)
        return self.ssh

    @property
    def interpreter(self) -> str:
        return self._target().interpreter

    def put(self, bundle: Any) -> str:
        return self._target().put(bundle)

    def run(self, argv: List[str], cwd: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT_S) -> RunResult:
        return self._target().run(argv, cwd=cwd, timeout=timeout)

    def remove(self, remote: str) -> None:
        self._target().remove(remote)

    def deliver(self, shipment: Shipment, timeout: float = DEFAULT_TIMEOUT_S) -> Delivery:
        return self._target().deliver(shipment, timeout=timeout)

    def run_last(self, argv: List[str], cwd: str, timeout: float = DEFAULT_TIMEOUT_S) -> RunResult:
        return self._target().run_last(argv, cwd, timeout=timeout)

    def exists(self, remote: str) -> bool:
        return self._target().exists(remote)


@contextlib.contextmanager
def _quiet_root_logger() -> Any:
    """labgrid's client logs its connection errors on the root logger; with no handler configured Python
    would print them on stderr beside our own one-line error, which already says what failed."""
    root = logging.getLogger()
    handler = None if root.handlers else logging.NullHandler()
    if handler is not None:
        root.addHandler(handler)
    try:
        yield
    finally:
        if handler is not None:
            root.removeHandler(handler)


def _busy(place: str, holder: str) -> PlaceBusyError:
    return PlaceBusyError(
        "labgrid place %s is acquired by %s" % (place, holder),
        hint="Nothing was deployed. Wait for its release (labgrid-client -p %s who), or queue for it with "
        "labgrid-client reserve and retry" % place,
    )


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


__all__ = ["LabgridError", "LabgridTarget"]
