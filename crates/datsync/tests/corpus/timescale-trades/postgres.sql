-- PostgreSQL's own reading of trades_test.csv into the profile's column types: the test
-- runs these statements, the last (the COPY) with the file as its input.
CREATE TABLE reference.timescale_trades (
  traded_at timestamp with time zone,
  recorded_at timestamp with time zone,
  field_3 bigint,
  field_4 bigint,
  pair text,
  market text,
  field_7 bigint,
  price double precision,
  size numeric,
  side bigint,
  trade_id bigint,
  base text
);
COPY reference.timescale_trades FROM STDIN (FORMAT csv);
