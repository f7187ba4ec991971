-- fastify-notify-edge: the transactional outbox table "notify_outbox".
-- A service inserts notifications here in the transaction that writes its business rows; the
-- relay of a notify-edge instance (or publisher) publishes committed rows and marks them done.
-- Run it once per database (psql -f, or your migration tool); running it again changes nothing.

CREATE SEQUENCE IF NOT EXISTS notify_outbox_id_seq;

CREATE TABLE IF NOT EXISTS notify_outbox (
  -- Drawn by the insert trigger under the topic's lock: within a topic, id order is commit order.
  id bigint PRIMARY KEY,
  -- A declared stream's name.
  stream text NOT NULL,
  -- The user of a private stream; null on a public stream.
  user_id text,
  -- The message's data as JSON text.
  data text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Set by the relay once the row is published, or dead.
  done_at timestamptz,
  -- Why a row can never be published (unknown_stream, schema, invalid, not_json, too_large); null when published.
  dead_reason text
);

-- Added after the first release: a table made by it gains them when this runs again.
-- The key of a channel stream; null on other streams.
ALTER TABLE notify_outbox ADD COLUMN IF NOT EXISTS channel_key text;
-- The inserting code's W3C trace context, continued by the relay's publish; null when none.
ALTER TABLE notify_outbox ADD COLUMN IF NOT EXISTS traceparent text;

-- The relay reads pending rows in id order; done rows leave this index.
CREATE INDEX IF NOT EXISTS notify_outbox_pending ON notify_outbox (id) WHERE done_at IS NULL;

-- Writers of one topic (stream and user, or stream and channel key) take turns until they
-- commit, so a row's id is drawn after every earlier row of its topic committed: the relay,
-- reading in id order, publishes a topic's rows in commit order. Writers of different topics do
-- not wait for each other. A row without a key takes the same lock as before keys existed.
CREATE OR REPLACE FUNCTION notify_outbox_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('notify_outbox'), hashtext(NEW.stream || '/' || coalesce(NEW.user_id, '') || coalesce('/' || NEW.channel_key, '')));
  NEW.id := nextval('notify_outbox_id_seq');
  RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER notify_outbox_order BEFORE INSERT ON notify_outbox
  FOR EACH ROW EXECUTE FUNCTION notify_outbox_order();

-- Wakes the relay (LISTEN "notify_outbox") when the inserting transaction commits.
CREATE OR REPLACE FUNCTION notify_outbox_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('notify_outbox', '');
  RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER notify_outbox_wake AFTER INSERT ON notify_outbox
  FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox_wake();
