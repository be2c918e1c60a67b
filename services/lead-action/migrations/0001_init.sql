-- lead-action: schema objects arrive with the service's features.
SELECT 1;
