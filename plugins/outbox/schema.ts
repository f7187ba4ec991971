import { InvalidOptionError } from '../errors.js'

// The outbox table's DDL, generated for one table name; `sql/notify_outbox.sql` in the package is
// this text for the default name (a test keeps them equal). Nothing runs it on start-up unless
// the relay is told to (`migrate: true`, for development and tests).

/** The default outbox table. */
export const DEFAULT_OUTBOX_TABLE = 'notify_outbox'

// Lower case and unquoted: the name is spliced into DDL, channel and function names as is.
const TABLE = /^(?:[a-z_][a-z0-9_]{0,40}\.)?[a-z_][a-z0-9_]{0,40}$/

/** Throws `FST_NOTIFY_INVALID_OPTION` unless `table` is `[schema.]name` in lower-case identifier characters. */
export function outboxTable (table: unknown = DEFAULT_OUTBOX_TABLE): string {
  if (typeof table !== 'string' || !TABLE.test(table)) throw new InvalidOptionError(`outbox table must match ${TABLE}`)
  return table
}

/** The LISTEN/NOTIFY channel that the table's insert trigger wakes the relay on. */
export function outboxChannel (table: string): string {
  return table
}

/** The table name without its schema, for naming the objects that belong to it. */
function bare (table: string): string {
  return table.slice(table.indexOf('.') + 1)
}

/** The DDL that creates the outbox `table`, its pending-row index and its two triggers; safe to run again, and it upgrades a table of an earlier release. */
export function outboxMigration (table: string = DEFAULT_OUTBOX_TABLE): string {
  outboxTable(table)
  const schema = table.includes('.') ? table.slice(0, table.indexOf('.') + 1) : ''
  const name = bare(table)
  return `-- fastify-notify-edge: the transactional outbox table "${table}".
-- A service inserts notifications here in the transaction that writes its business rows; the
-- relay of a notify-edge instance (or publisher) publishes committed rows and marks them done.
-- Run it once per database (psql -f, or your migration tool); running it again changes nothing.

CREATE SEQUENCE IF NOT EXISTS ${schema}${name}_id_seq;

CREATE TABLE IF NOT EXISTS ${table} (
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
ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS channel_key text;
-- The inserting code's W3C trace context, continued by the relay's publish; null when none.
ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS traceparent text;

-- The relay reads pending rows in id order; done rows leave this index.
CREATE INDEX IF NOT EXISTS ${name}_pending ON ${table} (id) WHERE done_at IS NULL;

-- Writers of one topic (stream and user, or stream and channel key) take turns until they
-- commit, so a row's id is drawn after every earlier row of its topic committed: the relay,
-- reading in id order, publishes a topic's rows in commit order. Writers of different topics do
-- not wait for each other. A row without a key takes the same lock as before keys existed.
CREATE OR REPLACE FUNCTION ${schema}${name}_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('${table}'), hashtext(NEW.stream || '/' || coalesce(NEW.user_id, '') || coalesce('/' || NEW.channel_key, '')));
  NEW.id := nextval('${schema}${name}_id_seq');
  RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER ${name}_order BEFORE INSERT ON ${table}
  FOR EACH ROW EXECUTE FUNCTION ${schema}${name}_order();

-- Wakes the relay (LISTEN "${outboxChannel(table)}") when the inserting transaction commits.
CREATE OR REPLACE FUNCTION ${schema}${name}_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('${outboxChannel(table)}', '');
  RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER ${name}_wake AFTER INSERT ON ${table}
  FOR EACH STATEMENT EXECUTE FUNCTION ${schema}${name}_wake();
`
}
