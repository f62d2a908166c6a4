"""Host networking: bridge networks, addresses, namespaces, DNS, published ports, filtering.

`NetworkManager` (manager.py) is the entry point; `BridgeNetworks` (provider.py) plugs it into
the container manager as its `NetworkProvider`.
"""

from runtime.network.manager import EndpointRequest, NetworkManager
from runtime.network.ports import PortSpec, parse_port_spec
from runtime.network.store import DEFAULT_NETWORK, Network

__all__ = ["DEFAULT_NETWORK", "EndpointRequest", "Network", "NetworkManager", "PortSpec",
           "parse_port_spec"]
