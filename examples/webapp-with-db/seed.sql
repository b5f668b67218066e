-- The example database's seed. The image's entrypoint runs it once, when
-- the container starts with an empty data directory, as the superuser
-- (POSTGRES_USER) in POSTGRES_DB. To run a changed seed, recreate the
-- container: foldup up --force-recreate db (the data lives in the
-- container, so the new one starts empty).

CREATE TABLE users (
	id    integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
	name  text NOT NULL,
	email text NOT NULL UNIQUE
);
INSERT INTO users (name, email) VALUES
	('Ada Lovelace', 'ada@example.com'),
	('Grace Hopper', 'grace@example.com'),
	('Alan Turing', 'alan@example.com'),
	('Edsger Dijkstra', 'edsger@example.com');

CREATE TABLE products (
	sku   text PRIMARY KEY,
	name  text NOT NULL,
	price numeric(8, 2) NOT NULL
);
INSERT INTO products VALUES
	('KB-01', 'Keyboard', 49.90),
	('MS-02', 'Mouse', 19.50),
	('MN-27', 'Monitor, 27"', 229.00);

-- Not for the web app: its role may not read this table.
CREATE TABLE api_keys (
	name text PRIMARY KEY,
	key  text NOT NULL
);
INSERT INTO api_keys VALUES ('billing', 'not-for-the-web-vm');

-- The web app (the code we do not trust, in the VM) logs in as web, which
-- may read users and products and nothing else; PostgreSQL 15 lets no
-- ordinary role create tables in the public schema.
CREATE ROLE web LOGIN PASSWORD 'web-example';
GRANT SELECT ON users, products TO web;
