-- The gateway keeps the revocation list in its memory and learns each change from PostgreSQL
-- (LISTEN labedge_revocations), instead of asking Redis on every request. Each notification says
-- what a committed change made of one device, staff member or session: `kind:id:1` revoked,
-- `kind:id:0` in good standing again. Notifications arrive in commit order, after the commit, and
-- only for changes of standing (the WHEN clauses), so a sync page that rewrites unchanged staff
-- rows sends nothing.

CREATE FUNCTION revocation_notify_device() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('labedge_revocations',
                      'device:' || NEW.id || ':' || (NEW.status <> 'active')::int);
    RETURN NULL;
END
$$;

CREATE TRIGGER devices_revocation_notify_insert AFTER INSERT ON devices
    FOR EACH ROW WHEN (NEW.status <> 'active') EXECUTE FUNCTION revocation_notify_device();
CREATE TRIGGER devices_revocation_notify_update AFTER UPDATE OF status ON devices
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION revocation_notify_device();

-- A staff member is revoked when inactive or named in staff_revocations.
CREATE FUNCTION revocation_notify_staff(member uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('labedge_revocations',
                      'staff:' || member || ':' ||
                      (COALESCE((SELECT NOT active FROM staff WHERE id = member), true)
                       OR EXISTS (SELECT 1 FROM staff_revocations WHERE staff_id = member))::int);
END
$$;

CREATE FUNCTION revocation_notify_staff_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'staff_revocations' AND TG_OP = 'DELETE' THEN
        PERFORM revocation_notify_staff(OLD.staff_id);
    ELSIF TG_TABLE_NAME = 'staff_revocations' THEN
        PERFORM revocation_notify_staff(NEW.staff_id);
    ELSE
        PERFORM revocation_notify_staff(NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER staff_revocation_notify_insert AFTER INSERT ON staff
    FOR EACH ROW WHEN (NOT NEW.active) EXECUTE FUNCTION revocation_notify_staff_row();
CREATE TRIGGER staff_revocation_notify_update AFTER UPDATE OF active ON staff
    FOR EACH ROW WHEN (OLD.active IS DISTINCT FROM NEW.active) EXECUTE FUNCTION revocation_notify_staff_row();
CREATE TRIGGER staff_revocations_notify AFTER INSERT OR DELETE ON staff_revocations
    FOR EACH ROW EXECUTE FUNCTION revocation_notify_staff_row();

-- A session is revoked once ended; it is never reinstated.
CREATE FUNCTION revocation_notify_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('labedge_revocations', 'session:' || NEW.id || ':1');
    RETURN NULL;
END
$$;

CREATE TRIGGER auth_sessions_revocation_notify AFTER UPDATE OF revoked_at ON auth_sessions
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION revocation_notify_session();
