"""What a fleet of shards shares beyond the inbox: the control relay and shard heartbeats."""
