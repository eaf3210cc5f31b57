-- +goose Up
-- Group sessions (services 04 and 06) as one row each: when, what, how many
-- took part, and whether the group was outside 6–15 (with its justification).
-- A view over sessions, so it needs no projector of its own and a rebuild
-- rebuilds it.
CREATE VIEW group_sessions AS
SELECT group_id,
       min(service)              AS service,
       min(delivered_at)         AS delivered_at,
       min(office)               AS office,
       max(group_size)           AS group_size,
       count(*)                  AS participants,
       bool_or(outside_group_range) AS outside_group_range,
       max(justification)        AS justification,
       sum(credited_minutes)     AS credited_minutes,
       sum(actual_minutes)       AS actual_minutes
FROM sessions
WHERE group_id IS NOT NULL
GROUP BY group_id;
