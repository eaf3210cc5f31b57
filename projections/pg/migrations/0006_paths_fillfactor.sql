-- +goose Up
-- A path's row is rewritten with each batch of its events. Room left on
-- every page lets the new version stay on the page without new index
-- entries (a HOT update) whenever no indexed column changes, as for every
-- session, pact, no-show or verification.
ALTER TABLE paths SET (fillfactor = 70);
