-- A million-contact import wrote ~6 million rows that each fired a foreign-key check (contacts, units,
-- fingerprints, staged rows): more time than the rows themselves. Those references are kept instead by the
-- code that writes them (a commit holds its list locked; staged rows belong to their import) and the
-- cascades become statement-level triggers: one set-based DELETE per statement, as before on delete.
ALTER TABLE units DROP CONSTRAINT units_contact_id_fkey;
ALTER TABLE contacts DROP CONSTRAINT contacts_list_id_fkey;
ALTER TABLE list_rows DROP CONSTRAINT list_rows_list_id_fkey;
ALTER TABLE import_rows DROP CONSTRAINT import_rows_import_id_fkey;

CREATE FUNCTION contact_lists_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contacts c USING old_rows o WHERE c.list_id = o.id;
    DELETE FROM list_rows r USING old_rows o WHERE r.list_id = o.id;
    RETURN NULL;
END $$;

CREATE FUNCTION contacts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM units u USING old_rows o WHERE u.contact_id = o.id;
    RETURN NULL;
END $$;

CREATE FUNCTION imports_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM import_rows r USING old_rows o WHERE r.import_id = o.id;
    RETURN NULL;
END $$;

CREATE TRIGGER contact_lists_cascade AFTER DELETE ON contact_lists
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_lists_removed();
CREATE TRIGGER contacts_cascade AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION contacts_removed();
CREATE TRIGGER imports_cascade AFTER DELETE ON imports
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION imports_removed();
