-- The tablets' change log keeps its guarantee (a tablet that has read up to a point never later finds
-- a change below it) without a lock held through the commit.
--
-- Until now `change_log_append` took a transaction-scoped advisory lock, so that positions became
-- visible in the order they were taken; the lock is released only after the commit's WAL flush, so
-- every transaction that wrote a replicated row flushed alone, one after the other (the desk's booking
-- groups waited on it more than on anything else, docs/performance.md).
--
-- Now each entry also records the writing transaction's id, and the order tablets follow is
-- (xid, position). A reader takes only the entries of transactions older than the oldest one still in
-- progress (`pg_snapshot_xmin` of its snapshot): those have all ended, and every transaction that
-- ends later has a larger id, so nothing can ever be committed below what the reader has taken. The
-- cost: a transaction holding an id for long (none in the gateway holds one across a network call)
-- delays what tablets see, never loses it. Ids are 64-bit (`xid8`), kept as bigint.
ALTER TABLE change_log ADD COLUMN xid bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX change_log_xid_position ON change_log (xid, position);

CREATE OR REPLACE FUNCTION change_log_append(p_entity text, p_entity_id uuid, p_op text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (position, entity, entity_id, op)
    VALUES (nextval('change_position_seq'), p_entity, p_entity_id, p_op);
END
$$;
