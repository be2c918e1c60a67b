-- contact-list: schema objects arrive with the service's features.
SELECT 1;
