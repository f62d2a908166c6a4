"""Images: a content-addressed blob store, unpacked layers, tags, and the ways images arrive
(archives, registries, bootstrap) and leave (export, push)."""

from runtime.images.reference import Reference, parse_reference
from runtime.images.store import Image, ImageStore

__all__ = ["Image", "ImageStore", "Reference", "parse_reference"]
