-- Which copy (generation) of each projection readers see, and which one a
-- rebuild is filling.
CREATE TABLE runwire_projection_generations (
    projection  text PRIMARY KEY,
    live        integer NOT NULL,
    building    integer,
    switched_at timestamptz NOT NULL DEFAULT now()
);

-- The position (next offset to read) of every partition a projection copy
-- has applied. Written in the same transaction as the copy's rows.
CREATE TABLE runwire_projection_positions (
    projection  text NOT NULL,
    generation  integer NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, generation, topic, partition)
);
