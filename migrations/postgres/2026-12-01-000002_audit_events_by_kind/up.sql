-- The event log filtered by kind, newest first, without a scan.
CREATE INDEX audit_events_by_kind ON audit_events (kind, id);
