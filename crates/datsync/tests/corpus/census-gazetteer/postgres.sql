-- PostgreSQL's own reading of 2013_Gaz_113CDs_national.txt into the profile's column types: the test
-- runs these statements, the last (the COPY) with the file as its input.
CREATE TABLE reference.census_gazetteer (
  usps text,
  geoid text,
  aland bigint,
  awater bigint,
  aland_sqmi numeric,
  awater_sqmi numeric,
  intptlat double precision,
  intptlong double precision
);
COPY reference.census_gazetteer FROM STDIN (FORMAT text, HEADER true);
