//! The throwaway PostgreSQL server.
