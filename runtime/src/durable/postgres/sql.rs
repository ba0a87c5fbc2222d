//! The statements, every value a parameter; only the schema's name, checked
//! and quoted, is put into the text.

/// The statements, with the schema's quoted name put in.
pub(super) struct Sql {
    pub(super) create: String,
    pub(super) append: String,
    pub(super) append_if: String,
    pub(super) lookup: String,
    pub(super) claim: String,
    pub(super) renew: String,
    pub(super) release: String,
    pub(super) select: String,
    /// `select` with the saga's and each entry's times, for an operator.
    pub(super) select_timed: String,
    /// The sagas table, schema-qualified.
    pub(super) sagas: String,
    /// Deletes finished sagas changed before `$1` with their journals.
    pub(super) purge: String,
    /// The ids `purge` would delete.
    pub(super) purgeable: String,
    /// The outbox's statements.
    pub(super) outbox: super::outbox::OutboxSql,
}

impl Sql {
    pub(super) fn new(s: &str) -> Sql {
        let (append, append_if) = appends(s);
        Sql {
            create: create(s),
            append,
            append_if,
            lookup: format!("SELECT status, owner, token FROM {s}.sagas WHERE id = $1"),
            claim: claim(s),
            renew: renew(s),
            release: format!(
                "UPDATE {s}.sagas SET owner = NULL, lease_until = NULL
                 WHERE id = ANY($2::text[]) AND owner = $1"
            ),
            select: format!(
                "SELECT s.id, s.saga_type, s.fingerprint, s.input, s.status,
                        j.seq, j.kind, j.step_index, j.attempt, j.payload, j.note
                 FROM {s}.sagas AS s LEFT JOIN {s}.journal AS j ON j.saga_id = s.id"
            ),
            sagas: format!("{s}.sagas"),
            select_timed: format!(
                "SELECT s.id, s.saga_type, s.fingerprint, s.input, s.status,
                        j.seq, j.kind, j.step_index, j.attempt, j.payload, j.note,
                        s.created_at, s.updated_at, j.at
                 FROM {s}.sagas AS s LEFT JOIN {s}.journal AS j ON j.saga_id = s.id"
            ),
            purge: purge(s),
            purgeable: format!(
                "SELECT id FROM {s}.sagas
                 WHERE status IN ('committed', 'compensated', 'resolved') AND updated_at < $1
                 ORDER BY n"
            ),
            outbox: super::outbox::OutboxSql::new(s),
        }
    }
}

/// `create`: $5 owner (NULL: submitted), $6 token, $7 lease in ms.
fn create(s: &str) -> String {
    format!(
        "INSERT INTO {s}.sagas (id, saga_type, fingerprint, input, status, owner, token,
                                lease_until, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'running', $5, $6,
                 CASE WHEN $5::text IS NULL THEN NULL
                      ELSE clock_timestamp() + $7::float8 * interval '1 millisecond' END,
                 now(), now())
         ON CONFLICT (id) DO NOTHING
         RETURNING token"
    )
}

/// `append` and `append_if`, which write the journal rows and the outbox
/// rows of one write in one statement.
fn appends(s: &str) -> (String, String) {
    // The journal rows of one write, from parallel arrays: one statement
    // appends them all and numbers them after the saga's `next_seq`.
    let insert_rows = format!(
        "INSERT INTO {s}.journal (saga_id, seq, kind, step_index, attempt, payload, note, at)
         SELECT $1, w.base + e.ord - 1, e.kind, e.step_index, e.attempt, e.payload, e.note, now()
         FROM w, unnest($3::text[], $4::int8[], $5::int8[], $6::bytea[], $7::text[])
              WITH ORDINALITY AS e(kind, step_index, attempt, payload, note, ord)
         RETURNING seq"
    );
    let messages_after_append = insert_messages(s, 11);
    let messages_after_append_if = insert_messages(s, 9);
    // $2 token, $8 new status or NULL, $9 whether the lease ends with it,
    // $10 owner. Fenced: only the holder of the current token writes.
    let append = format!(
        "WITH w AS (
             UPDATE {s}.sagas
             SET next_seq = next_seq + cardinality($3::text[]),
                 status = coalesce($8::text, status),
                 updated_at = CASE WHEN $8::text IS NULL THEN updated_at ELSE now() END,
                 owner = CASE WHEN $9::bool THEN NULL ELSE owner END,
                 lease_until = CASE WHEN $9::bool THEN NULL ELSE lease_until END
             WHERE id = $1 AND owner = $10::text AND token = $2::int8
             RETURNING next_seq - cardinality($3::text[]) AS base
         ){messages_after_append}
         {insert_rows}"
    );
    // $2 expected status, $8 new status. No lease: for a parked saga.
    let append_if = format!(
        "WITH w AS (
             UPDATE {s}.sagas
             SET next_seq = next_seq + cardinality($3::text[]),
                 status = $8::text, updated_at = now()
             WHERE id = $1 AND status = $2::text
             RETURNING next_seq - cardinality($3::text[]) AS base
         ){messages_after_append_if}
         {insert_rows}"
    );
    (append, append_if)
}

/// The outbox rows of the `sent` entries among a write's, from parallel
/// arrays starting at parameter `first`: id, the entry's ordinal in the write
/// (from 1), position in the entry, destination, key, payload, creation time.
/// In the statement that appends, so all or none.
fn insert_messages(s: &str, first: usize) -> String {
    let p: Vec<String> = (first..first + 7).map(|i| format!("${i}")).collect();
    format!(
        ", o AS (
             INSERT INTO {s}.outbox (id, saga_id, seq, n, destination, key, payload,
                                     created_ms, state, attempts, available_at)
             SELECT m.id, $1, w.base + m.ord - 1, m.n, m.destination, m.key, m.payload,
                    m.created_ms, 'pending', 0, now()
             FROM w, unnest({}::text[], {}::int8[], {}::int8[], {}::text[], {}::text[],
                            {}::bytea[], {}::int8[])
                  AS m(id, ord, n, destination, key, payload, created_ms)
         )",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    )
}

/// `claim`: $1 owner, $2 lease in ms, $3 limit, $4 ids run in this process.
fn claim(s: &str) -> String {
    format!(
        "UPDATE {s}.sagas AS s
         SET owner = $1,
             -- A new claim fences off the last holder; this store
             -- taking up again what it holds fences off nobody.
             token = CASE WHEN s.owner = $1 THEN s.token ELSE s.token + 1 END,
             lease_until = clock_timestamp() + $2::float8 * interval '1 millisecond'
         FROM (SELECT id FROM {s}.sagas
               WHERE status IN ('running', 'confirming')
                 AND (owner IS NULL OR owner = $1 OR lease_until < clock_timestamp())
                 AND id <> ALL($4::text[])
               ORDER BY n
               LIMIT $3
               FOR UPDATE SKIP LOCKED) AS c
         WHERE s.id = c.id
         RETURNING s.id, s.token"
    )
}

/// `renew`: $1 owner, $2 lease in ms, $3 held ids.
fn renew(s: &str) -> String {
    format!(
        "UPDATE {s}.sagas
         SET lease_until = clock_timestamp() + $2::float8 * interval '1 millisecond'
         WHERE id = ANY($3::text[]) AND owner = $1
         RETURNING id, token"
    )
}

/// `purge`: one statement, so one transaction: the sagas, their journals and
/// their messages go together, or not at all.
fn purge(s: &str) -> String {
    format!(
        "WITH gone AS (
             DELETE FROM {s}.sagas
             WHERE status IN ('committed', 'compensated', 'resolved') AND updated_at < $1
             RETURNING id
         ), entries AS (
             DELETE FROM {s}.journal WHERE saga_id IN (SELECT id FROM gone)
         ), messages AS (
             DELETE FROM {s}.outbox WHERE saga_id IN (SELECT id FROM gone)
         )
         SELECT id FROM gone"
    )
}
