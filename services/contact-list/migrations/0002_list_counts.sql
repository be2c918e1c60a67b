-- Status counts per list, kept by statement-level triggers on contacts: one grouped delta per statement
-- (an import of 100,000 contacts is one upsert of at most six rows), so GET of a list never counts rows.
CREATE TABLE list_counts (
    list_id uuid   NOT NULL REFERENCES contact_lists (id) ON DELETE CASCADE,
    status  text   NOT NULL,
    n       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (list_id, status)
);

INSERT INTO list_counts (list_id, status, n) SELECT list_id, status, count(*) FROM contacts GROUP BY 1, 2;

CREATE FUNCTION list_counts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO list_counts (list_id, status, n)
    SELECT list_id, status, count(*) FROM new_rows GROUP BY 1, 2
    ON CONFLICT (list_id, status) DO UPDATE SET n = list_counts.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE FUNCTION list_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO list_counts (list_id, status, n)
    SELECT list_id, status, sum(d) FROM (
        SELECT list_id, status, 1 AS d FROM new_rows
        UNION ALL
        SELECT list_id, status, -1 FROM old_rows
    ) x GROUP BY 1, 2 HAVING sum(d) <> 0
    ON CONFLICT (list_id, status) DO UPDATE SET n = list_counts.n + EXCLUDED.n;
    RETURN NULL;
END $$;

-- Deletes only lower existing rows: when the list itself is being deleted its counts are already gone.
CREATE FUNCTION list_counts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE list_counts k SET n = k.n - x.c
    FROM (SELECT list_id, status, count(*) AS c FROM old_rows GROUP BY 1, 2) x
    WHERE k.list_id = x.list_id AND k.status = x.status;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_counted_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION list_counts_added();
CREATE TRIGGER contacts_counted_update AFTER UPDATE ON contacts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION list_counts_changed();
CREATE TRIGGER contacts_counted_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION list_counts_removed();
