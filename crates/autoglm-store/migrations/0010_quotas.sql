-- A tenant's quota, as JSON (autoglm_core::quota::Quota); NULL is none.
ALTER TABLE tenants ADD COLUMN quota TEXT;
