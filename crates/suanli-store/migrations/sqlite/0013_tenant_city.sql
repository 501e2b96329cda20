-- The city a tenant is in (for the statistics' cross-city dispatch); none when not given.
ALTER TABLE tenants ADD COLUMN city TEXT;
