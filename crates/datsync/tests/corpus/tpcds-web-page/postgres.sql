-- PostgreSQL's own reading of web_page.csv into the profile's column types: the test
-- runs these statements, the last (the COPY) with the file as its input.
CREATE TABLE reference.tpcds_web_page (
  wp_web_page_sk bigint,
  wp_web_page_id text,
  wp_rec_start_date date,
  wp_rec_end_date date,
  wp_creation_date_sk bigint,
  wp_access_date_sk bigint,
  wp_autogen_flag boolean,
  wp_customer_sk bigint,
  wp_url text,
  wp_type text,
  wp_char_count bigint,
  wp_link_count bigint,
  wp_image_count bigint,
  wp_max_ad_count bigint
);
COPY reference.tpcds_web_page FROM STDIN (FORMAT csv, DELIMITER '|');
