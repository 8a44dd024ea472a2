-- The end of the lab's appointment window as the cloud's feed last gave it (issue 15). The gateway
-- holds every appointment of its lab scheduled before it, and no other: beyond it, a slot's places
-- cannot be counted, and a booking made there would be taken back by the feed as out of scope once
-- relayed. The desk therefore books, and lists slots, only before it. Written with the feed's
-- checkpoint, in the same transaction as the page that brought it.
CREATE TABLE appointment_window (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    ends_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
