-- Leadership for once-per-cluster duties (zombie sweeps, history pruning): a lease row that
-- the leader renews; expiry is judged by the database's clock, so node clocks do not matter.
CREATE TABLE leader_lease (
    name        text        PRIMARY KEY,
    node_id     uuid        NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
