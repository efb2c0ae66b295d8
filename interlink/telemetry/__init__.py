"""What a shard tells its operator: metrics and structured logs."""
