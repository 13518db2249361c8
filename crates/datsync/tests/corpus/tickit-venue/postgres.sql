-- PostgreSQL's own reading of venue_pipe.csv into the profile's column types: the test
-- runs these statements, the last (the COPY) with the file as its input.
CREATE TABLE reference.tickit_venue (
  venueid bigint,
  venuename text,
  venuecity text,
  venuestate text,
  venueseats bigint
);
COPY reference.tickit_venue FROM STDIN (FORMAT text, DELIMITER '|', HEADER true);
