-- API keys, the transactional outbox of events, and per-minute usage counters.
-- Applied once by `datahub migrate` (or at startup); never edit after release: add a new file.

CREATE TABLE api_keys (
  id                      text PRIMARY KEY,
  name                    text NOT NULL,
  prefix                  text NOT NULL,
  environment             text NOT NULL CHECK (environment IN ('live', 'test')),
  scopes                  text[] NOT NULL DEFAULT '{}',
  -- Both NULL: the configured defaults apply.
  rate_limit_minute       bigint,
  rate_limit_hour         bigint,
  metadata                jsonb NOT NULL DEFAULT '{}',
  -- Hex HMAC-SHA256 of the secret with API_KEY_SALT; the secret itself is never stored.
  key_hash                text NOT NULL UNIQUE,
  -- The hash replaced by the last rotation, accepted until previous_key_expires_at.
  previous_key_hash       text,
  previous_key_expires_at timestamptz,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now(),
  expires_at              timestamptz,
  last_used_at            timestamptz,
  revoked_at              timestamptz
);

-- Instances poll for keys changed since their last look.
CREATE INDEX api_keys_updated_at_idx ON api_keys (updated_at);
CREATE INDEX api_keys_previous_key_hash_idx ON api_keys (previous_key_hash)
  WHERE previous_key_hash IS NOT NULL;

-- Written in the same transaction as the change that caused it, so no event is lost.
CREATE TABLE events (
  id         text PRIMARY KEY,
  type       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  data       jsonb NOT NULL
);

CREATE INDEX events_created_at_idx ON events (created_at);

-- One row per key and minute, summed across instances by upserts.
CREATE TABLE api_key_usage (
  key_id       text NOT NULL,
  minute       timestamptz NOT NULL,
  requests     bigint NOT NULL DEFAULT 0,
  status_2xx   bigint NOT NULL DEFAULT 0,
  status_3xx   bigint NOT NULL DEFAULT 0,
  status_4xx   bigint NOT NULL DEFAULT 0,
  status_5xx   bigint NOT NULL DEFAULT 0,
  rate_limited bigint NOT NULL DEFAULT 0,
  bytes_in     bigint NOT NULL DEFAULT 0,
  bytes_out    bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (key_id, minute)
);
