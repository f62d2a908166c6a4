"""Image references as docker spells them: [REGISTRY[:PORT]/]PATH[:TAG][@DIGEST].

Names are stored the way the user typed them apart from the default tag: `busybox` is kept as
`busybox:latest`. The registry client normalises `busybox` to Docker Hub's `library/busybox`
when it has to talk to a registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.errors import InvalidArgument

# Every repetition below is separated by a required character, so a failing match cannot try the
# same text in several ways: matching is linear in the length (a `[-]*` separator, which may be
# empty, made a 26-character name take minutes). `_LABEL` ends on `(?<!-)` instead of
# `[-…]*[…]` for the same reason.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9][a-zA-Z0-9-]*(?<!-)"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"sha256:[a-f0-9]{64}"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)

DEFAULT_REGISTRY = "docker.io"
NAME_MAX = 255  # distribution's limit on a repository name, registry included
TEXT_MAX = NAME_MAX + 1 + 128 + 1 + len("sha256:") + 64  # name, tag and digest at their longest


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. `domain` is None when the user gave none."""

    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """Name without tag or digest, as typed (`localhost:5000/app`, `busybox`)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def registry(self) -> str:
        return self.domain or DEFAULT_REGISTRY

    @property
    def remote_path(self) -> str:
        """Repository path on the registry: Docker Hub puts single names under library/."""
        if self.registry == DEFAULT_REGISTRY and "/" not in self.path:
            return f"library/{self.path}"
        return self.path

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str, default_tag: str | None = "latest") -> Reference:
    """Parse `text`; a reference with neither tag nor digest gets `default_tag`."""
    text = text.strip()
    if len(text) > TEXT_MAX:
        raise InvalidArgument(f"invalid image reference {text[:40]!r}…: {len(text)} characters, "
                              f"at most {TEXT_MAX} are allowed")
    match = _REFERENCE.match(text)
    if not match:
        raise InvalidArgument(
            f"invalid image reference {text!r}: expected [REGISTRY/]NAME[:TAG][@sha256:DIGEST], "
            "with a lower-case name"
        )
    domain = match.group("domain")
    path = match.group("path")
    # "busybox" has no domain; "localhost/x" or "a.b/x" or "host:5000/x" do. A first component
    # without a dot, colon or "localhost" is part of the path (docker's rule).
    if domain and "." not in domain and ":" not in domain and domain != "localhost":
        if domain != domain.lower():
            raise InvalidArgument(
                f"invalid image reference {text!r}: repository names must be lower-case "
                f"({domain!r} is the first part of the name, not a registry)")
        path = f"{domain}/{path}"
        domain = None
    name = f"{domain}/{path}" if domain else path
    if len(name) > NAME_MAX:
        raise InvalidArgument(f"invalid image reference {text[:40]!r}…: the repository name has "
                              f"{len(name)} characters, at most {NAME_MAX} are allowed")
    tag = match.group("tag")
    digest = match.group("digest")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(domain=domain, path=path, tag=tag, digest=digest)
