"""What may reach the `ssh` command line: host and user names, and file names in its -o/-i values.

Checked before any ssh starts, so a bad name is a command-line error (TargetSpecError, exit 2) and a
missing key file is InputNotFoundError (exit 3), never an ssh failure. The name rules are the strict
ones of the standards: a name ssh's config could hand to a shell cannot pass them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Optional

from ..errors import InputNotFoundError, TargetSpecError

# RFC 1123 host names (labels of letters, digits, inner hyphens; an optional final dot), POSIX user names
# (the portable file name characters, no leading hyphen). Nothing else reaches ssh: no shell metacharacter,
# no option-like leading '-', no '%' token (CVE-2023-51385: ssh may hand %h/%r to a shell).
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(r"^%s(?:\.%s)*\.?$" % (_HOST_LABEL, _HOST_LABEL))
_USER_NAME = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$")


def check_host(host: str) -> str:
    """`host` if it is a host name, an IPv4 or an IPv6 address (without brackets); else TargetSpecError."""
    if len(host) <= 253 and _HOST_NAME.match(host) and not host.replace(".", "").isdigit():
        return host
    try:
        ipaddress.IPv4Address(host)
        return host
    except ValueError:
        pass
    if "%" not in host:  # a zone (fe80::1%eth0) is a '%' token to ssh
        try:
            ipaddress.IPv6Address(host)
            return host
        except ValueError:
            pass
    raise TargetSpecError(
        "%r is not a host name or an IP address" % host,
        hint="Write a host name (letters, digits, '-', '.'), an IPv4 address, or an IPv6 address in brackets "
        "(ssh://user@[fe80::1])",
    )


def check_user(user: str) -> str:
    if _USER_NAME.match(user):
        return user
    raise TargetSpecError(
        "%r is not a user name" % user,
        hint="A user name has letters, digits, '.', '_' and '-' (not first), at most 32 characters",
    )


def ssh_file_arg(path: Path, what: str) -> str:
    """A file name as ssh reads it in -o/-i: '%' doubled (ssh expands %-tokens there), quotes and ${ refused."""
    text = os.fspath(path)
    if '"' in text or "${" in text or "\n" in text:
        raise TargetSpecError("%s %s holds a character ssh cannot take in a file name" % (what, text),
                              hint="Use a path without '\"', '${' or a newline")  # fmt: skip
    return text.replace("%", "%%")


def check_ssh_files(identity: Optional[Path], known_hosts: Optional[Path]) -> None:
    """Local files an SSH target needs, checked before any connection (exit 3 / 2, naming the path)."""
    if identity is not None:
        if not os.path.isfile(identity):
            raise InputNotFoundError("SSH key %s does not exist" % identity, hint="Check the path given to --identity")
        if not os.access(identity, os.R_OK):
            raise InputNotFoundError("SSH key %s is not readable" % identity, hint="Check its permissions")
        ssh_file_arg(identity, "--identity")
    if known_hosts is not None:
        ssh_file_arg(known_hosts, "--known-hosts")
        if os.path.isdir(known_hosts):
            raise InputNotFoundError("--known-hosts %s is a folder, not a file" % known_hosts,
                                     hint="Name the known_hosts file itself")  # fmt: skip
