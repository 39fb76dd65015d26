-- A local-mode sign-in code may sign an admin in (`flask --app wsgi signin-code EMAIL --admin`):
-- the token it is exchanged for then carries app_metadata.role = admin, as `local-token --admin`.
alter table private.local_signin_codes add column admin boolean not null default false;
