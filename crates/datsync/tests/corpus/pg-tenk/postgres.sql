-- PostgreSQL's own reading of tenk.data into the profile's column types: the test
-- runs these statements, the last (the COPY) with the file as its input.
CREATE TABLE reference.pg_tenk (
  unique1 bigint,
  unique2 bigint,
  two bigint,
  four bigint,
  ten bigint,
  twenty bigint,
  hundred bigint,
  thousand bigint,
  twothousand bigint,
  fivethous bigint,
  tenthous bigint,
  odd bigint,
  even bigint,
  stringu1 text,
  stringu2 text,
  string4 text
);
COPY reference.pg_tenk FROM STDIN (FORMAT text);
