"""What a fleet of shards shares beyond the inbox: the shard count the shards agree on (recorded
in Redis with a generation), the lease on each stream and the handover of entries when the count
changes, the control relay and shard heartbeats."""

from interlink.fleet.handover import Handover
from interlink.fleet.record import FleetView

__all__ = ["FleetView", "Handover"]
