"""Named volumes: the store (create, list, remove) and backup/restore as tar archives.

    store = VolumeStore(root)            # or Host(root).volumes
    volume = store.create("data")        # volume.mountpoint is bind-mounted into containers
    store.backup("data", Path("data.tar.zst"))
    store.restore("data", Path("data.tar.zst"), users=host.containers.users_of_volume)
"""

from runtime.volumes.store import (
    NAME_PATTERN,
    Volume,
    VolumeStore,
    mounts_under,
    validate_labels,
    validate_volume_name,
)

__all__ = [
    "NAME_PATTERN",
    "Volume",
    "VolumeStore",
    "mounts_under",
    "validate_labels",
    "validate_volume_name",
]
