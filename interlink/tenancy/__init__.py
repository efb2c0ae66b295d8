"""What a tenant is and where it lives: its configuration, regions, the directory that resolves
webhooks to tenants, change events, and which shard owns it."""
