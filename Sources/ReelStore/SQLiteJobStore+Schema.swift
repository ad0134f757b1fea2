import GRDB

extension SQLiteJobStore {
    /// The schema's history. A registered migration never changes once released: add a new one instead.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "job") { t in
                t.primaryKey("id", .text)
                t.column("state", .text).notNull()
                t.column("spec", .jsonText).notNull()
                t.column("priority", .integer).notNull()
                t.column("attempts", .integer).notNull()
                t.column("lease_owner", .text)
                t.column("lease_expires_at", .double)
                t.column("created_at", .double).notNull()
                t.column("started_at", .double)
                t.column("finished_at", .double)
                t.column("error_code", .text)
                t.column("error_message", .text)
                t.column("progress", .jsonText)
                t.column("outputs", .jsonText)
                t.column("cancel_requested", .boolean).notNull().defaults(to: false)
                t.column("memory_saving", .boolean).notNull().defaults(to: false)
                t.column("idempotency_key", .text)
                t.column("request_digest", .text)
                t.column("batch_id", .text)
                t.column("slot", .text)
            }
            // The claim query reads this index in order and stops at its first queued row.
            try db.execute(sql: "CREATE INDEX job_claim ON job(state, priority DESC, created_at, id)")
            // Listing, newest first, of every job or of one state, with keyset paging.
            try db.create(index: "job_created", on: "job", columns: ["created_at", "id"])
            try db.create(index: "job_state_created", on: "job", columns: ["state", "created_at", "id"])
            try db.create(index: "job_batch", on: "job", columns: ["batch_id", "created_at", "id"])
            // Several NULL keys are allowed: SQLite's UNIQUE lets NULLs repeat.
            try db.create(index: "job_idempotency_key", on: "job", columns: ["idempotency_key"], options: .unique)

            try db.create(table: "job_event") { t in
                // AUTOINCREMENT: a sequence number is never reused, so it only grows.
                t.autoIncrementedPrimaryKey("sequence")
                t.column("job_id", .text).notNull().indexed().references("job", onDelete: .cascade)
                t.column("at", .double).notNull()
                t.column("kind", .text).notNull()
                t.column("message", .text)
            }
        }
        // v2: jobs belong to a tenant (an API key's id); NULL for every job made before, or without keys.
        migrator.registerMigration("v2") { db in
            try db.alter(table: "job") { t in t.add(column: "owner", .text) }
            // A tenant's listing, newest or oldest first, with keyset paging; and its queued count.
            try db.create(index: "job_owner_created", on: "job", columns: ["owner", "created_at", "id"])
            try db.create(index: "job_owner_state", on: "job", columns: ["owner", "state"])
        }
        // v3: the node that ran a job's latest attempt, to find its files when nodes do not share a disk.
        migrator.registerMigration("v3") { db in
            try db.alter(table: "job") { t in t.add(column: "node", .text) }
        }
        // v4: batch manifests, added in the same transaction as their jobs (they were files in the data directory
        // of the node that took the batch; `reel serve` imports those at startup).
        migrator.registerMigration("v4") { db in
            try db.create(table: "batch") { t in
                t.primaryKey("id", .text)
                t.column("created_at", .double).notNull()
                t.column("source", .text).notNull()
                t.column("owner", .text)
                t.column("accepted", .jsonText).notNull()
                t.column("rejected", .jsonText).notNull()
            }
        }
        // v5: the bytes of the images jobs start from, so that the store holds everything about its jobs (and
        // `reel migrate-store` carries them to a cluster's database, where every node reads them). Dates are REAL
        // seconds since 1970, as the job's are; `used_at` is when it was last stored or named by a submission.
        migrator.registerMigration("v5") { db in
            try db.create(table: "image") { t in
                t.primaryKey("sha256", .text)
                t.column("format", .text).notNull()
                t.column("bytes", .blob).notNull()
                t.column("created_at", .double).notNull()
                t.column("used_at", .double).notNull()
            }
        }
        // v6: the LoRA set of each job (`GenerationSpec.loraKey`, "" for none) and when it was first passed over
        // for a later job of the set a claimer held (`ClaimAffinity`); the index serves the search for that job.
        migrator.registerMigration("v6") { db in
            try db.alter(table: "job") { t in
                t.add(column: "lora_key", .text).notNull().defaults(to: "")
                t.add(column: "passed_over_at", .double)
            }
            try db.execute(sql: "CREATE INDEX job_claim_lora ON job(state, lora_key, priority DESC, created_at, id)")
        }
        return migrator
    }
}
