-- A tenant's fair-share weight and quotas per chip family, as JSON set by the operator.
ALTER TABLE tenants ADD COLUMN policy TEXT;
