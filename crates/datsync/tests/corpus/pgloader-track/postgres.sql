-- PostgreSQL's own reading of track.copy into the profile's column types: the test
-- runs these statements, the last (the COPY) with the file as its input.
CREATE TABLE reference.pgloader_track (
  trackid bigint,
  track text,
  album text,
  media text,
  genre text,
  composer text,
  milliseconds bigint,
  bytes bigint,
  unitprice numeric
);
COPY reference.pgloader_track FROM STDIN (FORMAT text);
